"""Chat templates: the jinja template a tokenizer_config.json carries, rendered in a sandbox.

The environment matches transformers' (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, the
loopcontrols extension, a ``tojson`` filter that keeps non-ASCII text, ``raise_exception`` and
``strftime_now``), so a model's own template renders the same prompt it was trained on. The sandbox stops a
template from reaching Python internals: templates come with downloaded models and are not trusted.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from cove.errors import TokenizerError


def _raise_exception(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _tojson(
    x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def compile_template(template: str) -> Any:
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise TokenizerError(f"The chat template does not parse (line {exc.lineno}: {exc.message}).") from exc


def select_template(chat_template: Any, name: str | None = None, *, tools: Any = None) -> str:
    """The template text from tokenizer_config's chat_template (a string, or a list of named templates)."""
    if chat_template is None:
        raise TokenizerError(
            "This tokenizer has no chat template (tokenizer_config.json has no 'chat_template'): pass "
            "chat_template=... with a jinja template."
        )
    if isinstance(chat_template, str):
        return chat_template
    if isinstance(chat_template, dict):
        named = chat_template
    else:
        named = {t["name"]: t["template"] for t in chat_template}
    if name is None:
        name = "tool_use" if tools and "tool_use" in named else "default"
    if name not in named:
        raise TokenizerError(f"No chat template named {name!r}; this tokenizer has {sorted(named)}.")
    return named[name]


def render_chat_template(
    template: str,
    messages: list[dict[str, Any]],
    add_generation_prompt: bool = False,
    *,
    continue_final_message: bool = False,
    tools: list[Any] | None = None,
    documents: list[Any] | None = None,
    **special_tokens: Any,
) -> str:
    """Render one conversation; ``special_tokens`` (bos_token, eos_token, ...) and any other template
    variables are passed to the template as transformers passes them."""
    import jinja2

    if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
        raise TokenizerError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}."
        )
    if add_generation_prompt and continue_final_message:
        raise TokenizerError("add_generation_prompt and continue_final_message cannot both be set.")
    try:
        rendered = compile_template(template).render(
            messages=list(messages),
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            **special_tokens,
        )
    except jinja2.exceptions.SecurityError as exc:
        raise TokenizerError(f"The chat template tried an unsafe operation and was stopped: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise TokenizerError(f"The chat template failed to render: {exc}") from exc
    if continue_final_message:
        final = messages[-1].get("content")
        if not isinstance(final, str) or final.strip() not in rendered:
            raise TokenizerError(
                "continue_final_message=True needs the final message's text to appear in the rendered prompt."
            )
        final = final.strip()
        rendered = rendered[: rendered.rindex(final) + len(final)]
    return rendered
