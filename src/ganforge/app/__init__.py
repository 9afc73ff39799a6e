"""The studio (`ganforge serve`): a browser page and a JSON API over trained runs.

Runs are loaded once, without training code, and addressed by name; sampling, editing and
reports run on a bounded work queue. See server.py for the safety rules and the API.
"""
from .jobs import Limits
from .runs import StudioRun, load_runs
from .server import create_app
from .work import QueueFull, WorkQueue

__all__ = ["Limits", "QueueFull", "StudioRun", "WorkQueue", "create_app", "load_runs"]
