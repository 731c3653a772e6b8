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


def select_template(chat_template: Any, name_or_template: str | None = None, *, tools: Any = None) -> str:
    """The template text, as transformers' get_chat_template picks it: ``chat_template`` is the tokenizer's
    (a string, or named templates as a dict or list); ``name_or_template`` a name among those or a template
    of the caller's own."""
    if isinstance(chat_template, (list, tuple)):
        chat_template = {t["name"]: t["template"] for t in chat_template}
    if isinstance(chat_template, dict):
        if name_or_template is not None:
            return chat_template.get(name_or_template, name_or_template)
        if tools and "tool_use" in chat_template:
            return chat_template["tool_use"]
        if "default" in chat_template:
            return chat_template["default"]
        raise TokenizerError(
            f"This tokenizer has named chat templates {sorted(chat_template)} and none is 'default': pass "
            "chat_template=<name>."
        )
    if name_or_template is not None:
        return name_or_template
    if chat_template is None:
        raise TokenizerError(
            "This tokenizer has no chat template (tokenizer_config.json has no 'chat_template'): pass "
            "chat_template=... with a jinja template."
        )
    return str(chat_template)


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


def apply_chat_template(
    tokenizer: Any,
    conversation: Any,
    tools: list[Any] | None = None,
    documents: list[Any] | None = None,
    chat_template: str | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
    tokenize: bool = True,
    padding: Any = False,
    truncation: Any = False,
    max_length: int | None = None,
    return_tensors: str | None = None,
    return_dict: bool = True,
    tokenizer_kwargs: dict[str, Any] | None = None,
    **template_kwargs: Any,
) -> Any:
    """``tokenizer.apply_chat_template``, with transformers' (v5) arguments and defaults: one conversation or
    a batch of them; text when ``tokenize=False``, else a BatchEncoding (``return_dict=True``) or ids."""
    if isinstance(conversation, (list, tuple)) and not conversation:
        raise TokenizerError(
            "Cannot apply a chat template to an empty conversation: give at least one message."
        )
    template = select_template(tokenizer.chat_template, chat_template, tools=tools)
    batched = isinstance(conversation, (list, tuple)) and isinstance(conversation[0], (list, tuple))
    conversations = conversation if batched else [conversation]
    variables = {**tokenizer.special_tokens_map, **template_kwargs}
    rendered = [
        render_chat_template(
            template,
            [{k: v for k, v in message.items() if v is not None} for message in messages]
            if all(isinstance(m, dict) for m in messages)
            else messages,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            tools=tools,
            documents=documents,
            **variables,
        )
        for messages in conversations
    ]
    text: Any = rendered if batched else rendered[0]
    if not tokenize:
        return text
    encoded = tokenizer(
        text,
        padding=padding,
        truncation=truncation,
        max_length=max_length,
        add_special_tokens=False,
        return_tensors=return_tensors,
        **(tokenizer_kwargs or {}),
    )
    return encoded if return_dict else encoded["input_ids"]
