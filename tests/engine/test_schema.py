"""The engine stands alone: its own tables, created without the application's migrations."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from reelwatch import engine
from reelwatch.database import Database
from reelwatch.engine import schema, states
from reelwatch.engine.spec import TaskContext


def test_create_all_makes_only_the_engine_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'engine.db'}")
    try:
        schema.create_all(db)
        schema.create_all(db)  # idempotent: existing tables are left as they are
        tables = set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
    assert tables == {"workflows", "tasks", "events", "workers", "leadership"}


def _double(ctx: TaskContext) -> dict[str, Any]:
    return {"twice": 2 * int(ctx.workflow_input["n"])}


def test_a_standalone_engine_runs_a_workflow_through_the_public_api(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'engine.db'}")
    schema.create_all(db)
    spec = engine.define("test_public_api", engine.TaskSpec("double", _double))
    with db.write() as session:
        workflow = engine.start(session, spec, input={"n": 21})
    stop = threading.Event()

    def finished() -> bool:
        with db.read() as session:
            state = session.get_one(schema.Workflow, workflow.id).state
        if state == states.WF_SUCCEEDED:
            stop.set()
        return stop.is_set()

    def watch() -> None:  # stops the worker when the workflow is done, or after 20 s
        deadline = time.monotonic() + 20
        while not finished() and time.monotonic() < deadline:
            stop.wait(0.05)
        stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        engine.run_worker(db, engine.WorkerConfig(lease_s=5), stop, workflows={spec.name: spec})
    finally:
        stop.set()
        watcher.join()
    with db.read() as session:
        output = session.scalars(select(schema.Task.output)).one()
    db.dispose()
    assert output == {"twice": 42}
