"""Where cells run: in this process (``--jobs 1``), in a pool of worker processes, or on a Dask cluster."""
from __future__ import annotations

import concurrent.futures as cf
import time

from .. import interrupt
from ..errors import MedpipeError, described
from .workers import run_task, worker_init


class InProcess:
    """--jobs 1: cells run one after the other in this process (no staging, no pickling)."""

    name, slots = "in-process", 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, task: dict) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(run_task(task))
        except Exception as exc:  # noqa: BLE001 - reported as the cell's failure
            fut.set_exception(exc)
        interrupt.check()  # a cell that ended after SIGINT does not count, even if its KeyboardInterrupt was lost
        return fut

    def wait(self, pending):
        return set(pending), set()


class LocalPool:
    """--jobs N: a pool of N worker processes (spawned: same behaviour on Linux, macOS and Windows)."""

    name = "local"

    def __init__(self, jobs: int):
        self.slots = jobs
        self.pool: cf.ProcessPoolExecutor | None = None

    def _start(self):
        import multiprocessing

        self.pool = cf.ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=worker_init)

    def __enter__(self):
        self._start()
        return self

    def __exit__(self, exc_type, *exc):
        self.close(now=exc_type is not None)
        return False

    def close(self, now: bool = False) -> None:
        if self.pool is None:
            return
        if now:  # interrupted: stop the cells in flight rather than wait for them
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.terminate()
        self.pool.shutdown(wait=not now, cancel_futures=True)
        self.pool = None

    def submit(self, task: dict):
        if self.pool is None:
            self._start()
        try:
            return self.pool.submit(run_task, task)
        except cf.process.BrokenProcessPool:  # a worker died (killed, out of memory): start a fresh pool
            self.close(now=True)
            self._start()
            return self.pool.submit(run_task, task)

    def wait(self, pending):
        done = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        interrupt.check()  # workers saw Ctrl-C too: their results after it are not filed
        return done


class DaskCluster:
    """``executor: dask`` / ``--scheduler ADDRESS``: the same cells as tasks on a dask.distributed cluster.

    Without an address a LocalCluster of ``jobs`` single-threaded worker processes is started and closed again.
    """

    name = "dask"
    connect_timeout = "20s"  # an unreachable --scheduler fails after this

    def __init__(self, address: str | None, jobs: int, processes: bool = True):
        self.address, self.jobs, self.processes = address, jobs, processes
        self.client = self.cluster = None
        self.slots = jobs

    def __enter__(self):
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError:
            raise MedpipeError("executor dask needs dask.distributed: pip install 'dask[distributed]'") from None
        try:
            if self.address:
                self.client = Client(self.address, timeout=self.connect_timeout)
            else:
                self.cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=self.processes,
                                            dashboard_address=":0", silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as exc:
            self.__exit__(None)
            where = f"the Dask scheduler at {self.address}" if self.address else "a Dask LocalCluster"
            raise MedpipeError(f"cannot reach {where} ({exc}); start one with 'dask scheduler' + 'dask worker "
                               "ADDRESS', or drop --scheduler / executor: dask") from None
        try:  # the thread budget in every worker; and a first task proves scheduler and workers know medpipe
            self.client.run(worker_init)
            self.client.submit(worker_init, pure=False).result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - raised by the scheduler or the workers, any type
            self.__exit__(None)
            if isinstance(exc, TimeoutError):
                raise MedpipeError(f"no Dask worker ran a task within 120 s; are workers connected to "
                                   f"{self.address}? (dask worker {self.address})") from None
            hint = ("the scheduler and every worker need medpipe and its requirements installed (or PYTHONPATH set "
                    "to the medpipe checkout): Dask unpickles tasks on both" if "medpipe" in str(exc)
                    or "deserializ" in str(exc) else "check the scheduler's and workers' logs")
            raise MedpipeError(f"the Dask workers cannot run medpipe tasks ({described(exc)}); "
                               f"{hint}") from None
        self.slots = max(1, sum(self.client.nthreads().values()))
        return self

    def __exit__(self, *exc):
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a cluster that is already gone
                    pass
        return False

    def describe(self) -> str:
        if self.cluster is not None:
            return f"Dask LocalCluster, {self.slots} worker(s)"
        return f"Dask scheduler {self.address}, {self.slots} worker thread(s)"

    def submit(self, task: dict):
        return self.client.submit(run_task, task, pure=False, key=f"medpipe-cell-{task['index']}-{time.time_ns()}")

    def wait(self, pending):
        from distributed import wait

        res = wait(list(pending), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)
