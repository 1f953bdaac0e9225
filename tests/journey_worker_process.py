"""The project's worker in a process of its own, configured by ``REVOPS_*`` variables.

The crash test starts this with ``python -m tests.journey_worker_process``, waits for the
"ready" line, and kills it with SIGKILL in the middle of a send. It runs exactly the
workflows and activities of ``worker.py``; only the sticky-queue timeout is short, so the
restarted worker picks up the killed one's workflow after one second instead of ten.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.worker import Worker

from revops.settings import Settings
from revops.temporal import connect
from worker import WORKFLOWS, WorkerDeps, send_workers


async def main() -> None:
    """Run the worker until killed."""
    settings = Settings()
    deps = WorkerDeps.from_settings(settings)
    client = await connect(settings)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=deps.activities(),
        activity_executor=ThreadPoolExecutor(max_workers=4),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )
    assert deps.effects is not None
    sends = send_workers(client, deps.effects.send_effect, settings.task_queue)
    async with contextlib.AsyncExitStack() as stack:
        for each in [worker, *sends]:
            await stack.enter_async_context(each)
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
