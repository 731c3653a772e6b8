"""Gradio demos of Cove's pipelines: ``cove.demo.interface(task_or_pipeline)`` builds the app for a task, a
model or a ready pipeline; ``cove demo MODEL`` launches it, or writes it as a space repo
(``share_on_hub``). gradio is imported only when a demo is built (``pip install 'cove[demo]'``)."""

from __future__ import annotations

from cove.demo.interface import DEMO_TASKS, demo_task, interface
from cove.demo.space import share_on_hub, space_files

__all__ = ["DEMO_TASKS", "demo_task", "interface", "share_on_hub", "space_files"]
