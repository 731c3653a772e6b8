"""A demo as a space repo: README.md (the Hub's space config), a few-line app.py calling
cove.demo.interface, requirements.txt; pushed with Cove's hub client."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cove.errors import PipelineError


def _gradio_version() -> str:
    try:
        import gradio
    except ImportError:
        raise PipelineError(
            "cove.demo needs gradio, which is not installed: pip install 'cove[demo]'."
        ) from None
    return str(gradio.__version__)


def space_files(model: str, *, task: str | None = None, title: str | None = None) -> dict[str, str]:
    """The files of a space that runs the demo of model (with task, that task's pipeline on it)."""
    import yaml

    from cove.demo.interface import demo_task
    from cove.hub.client import is_repo_id

    if not is_repo_id(model):
        raise PipelineError(
            f"A space loads its model from the hub, so it needs the model's repo id (owner/name), not {model!r}: "
            "push the model first (model.push_to_hub or cove.hub.upload_folder) and pass its id."
        )
    if task is not None:
        demo_task(task)  # an unknown task fails here, not when the space starts
    meta = {
        "title": title or f"{model.rsplit('/', 1)[-1]} demo",
        "sdk": "gradio",
        "sdk_version": _gradio_version(),
        "app_file": "app.py",
        "models": [model],
        "pinned": False,
    }
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    about = f"the `{task}` pipeline on " if task else ""
    readme = (
        f"---\n{front}---\n\n# {meta['title']}\n\nA Gradio demo of {about}[{model}](/{model}), built by "
        "`cove demo --share-on-hub`.\n"
    )
    call = f"{json.dumps(task)}, model={json.dumps(model)}" if task else json.dumps(model)
    app = (
        f'"""{meta["title"]}: the Gradio app `cove demo` builds for {model}."""\n\n'
        "import cove.demo\n\n"
        f"demo = cove.demo.interface({call})\n\n"
        'if __name__ == "__main__":\n'
        "    demo.launch()\n"
    )
    return {"README.md": readme, "app.py": app, "requirements.txt": "cove[demo]\n"}


def share_on_hub(
    model: str,
    repo_id: str,
    *,
    task: str | None = None,
    token: str | None = None,
    private: bool = False,
    endpoint: str | None = None,
) -> str:
    """Write the demo of model as the space repo_id and push it (COVE_ENDPOINT's hub, else the local data
    dir); returns the space's URL."""
    from cove.hub import client

    files = space_files(model, task=task)
    with tempfile.TemporaryDirectory(prefix="cove-space-") as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
        client.upload_folder(
            repo_id,
            folder,
            token=token,
            repo_type="space",
            private=private,
            commit_message=f"Demo of {model} (cove demo)",
            endpoint=endpoint,
        )
    base = endpoint or client.get_endpoint()
    return f"{base.rstrip('/')}/spaces/{repo_id}" if base else f"local:spaces/{repo_id}"
