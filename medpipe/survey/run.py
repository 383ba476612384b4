"""A survey from start to end: inventory every source, draw the sample, measure the sampled series (in this
process, in worker processes or on Dask; each series one task, each finished one appended to the store behind
``--resume``), project, and write survey.csv, survey.json, the page and the console table."""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import shutil
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from ..errors import MedpipeError, described
from ..files import make_dirs, safe_component
from ..matrix import ResultStore, cap_jobs_for_memory, default_jobs, find_resume_folder
from ..matrix.executors import DaskCluster, LocalPool
from ..results import run_folder
from .estimate import Stratum, codec_values, combine, pooled_cv, stored_values
from .inventory import SeriesInfo, summary, take_inventory
from .lossy import Guideline, guideline_of, held_to
from .measure import measure_series
from .sample import STRATA_KEYS, draw, strata


@dataclass
class SurveyPlan:
    specs: tuple
    fraction: float | None = None
    per_stratum: int | None = None
    seed: int = 0
    out: Path = Path("results")
    name: str = "survey"
    jobs: int | None = None  # None: every core (as the matrix), capped by memory
    scheduler: str | None = None
    resume: bool = False
    ffmpeg: str | None = None
    strata_keys: tuple = STRATA_KEYS
    lossy_specs: tuple = ()  # --lossy: the ladder of lossy settings (survey.lossy)
    guideline: Guideline | None = None  # --lossy: the clinical limit they are held to

    def settings(self) -> dict:
        """What makes a stored measurement reusable (--resume): the codecs and their parameters (and the lossy
        ladder when there is one; not the guideline, which only chooses among measured settings)."""
        out = {"codecs": [s.canonical() for s in self.specs], "labels": [s.label for s in self.specs]}
        if self.lossy_specs:
            out["lossy"] = [[s.canonical(), s.label] for s in self.lossy_specs]
        return out


def series_key(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:24]


def survey_folder(plan: SurveyPlan, started: datetime) -> Path:
    if plan.resume:
        found = find_resume_folder(plan.out, plan.name)
        if found is None:
            raise MedpipeError(f"--resume: no earlier survey '{plan.name}' with measured series under {plan.out}")
        return found
    return run_folder(plan.out, plan.name, started)  # created once the inventory found something


class Executor:
    """Where series are measured: here (jobs 1), the matrix's process pool (jobs N: spawned workers that end with
    the run, stopped at once on Ctrl-C), or its Dask cluster (--scheduler)."""

    def __init__(self, jobs: int, scheduler: str | None):
        self.jobs, self.scheduler = max(1, jobs), scheduler
        self.local = self.dask = None

    def __enter__(self):
        if self.scheduler:
            self.dask = DaskCluster(self.scheduler, self.jobs).__enter__()
        elif self.jobs > 1:
            self.local = LocalPool(self.jobs).__enter__()
        return self

    def __exit__(self, exc_type, *exc):
        procs = list(getattr(self.local.pool, "_processes", {}).values()) if self.local and self.local.pool else []
        for ex in (self.dask, self.local):
            if ex is not None:
                ex.__exit__(exc_type, *exc)
        if exc_type is not None:  # interrupted: a worker inside one long codec call does not see SIGTERM
            for proc in procs:
                proc.join(timeout=3)
                if proc.is_alive():
                    proc.kill()
        return False

    @property
    def slots(self) -> int:
        return self.dask.slots if self.dask is not None else self.jobs

    def submit(self, task: dict):
        if self.dask is not None:
            return self.dask.client.submit(measure_series, task, pure=False)
        if self.local is not None:
            try:
                return self.local.pool.submit(measure_series, task)
            except cf.process.BrokenProcessPool:  # a worker died (killed, out of memory): a fresh pool
                self.local.close(now=True)
                self.local._start()
                return self.local.pool.submit(measure_series, task)
        fut: cf.Future = cf.Future()
        fut.set_result(measure_series(task))
        return fut

    def wait(self, pending: set):
        if self.dask is not None:
            return self.dask.wait(pending)
        return cf.wait(pending, return_when=cf.FIRST_COMPLETED)


def outcome(fut, task: dict) -> dict:
    """The task's record; a worker that died or a task the executor lost is a series not measured (tried again
    on --resume), not the end of the survey."""
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001 - BrokenProcessPool, a Dask worker lost, ...: said in the record
        paths = [Path(p) for p in task["paths"]]
        return {"series_uid": task["series_uid"], "stored_bytes": sum(p.stat().st_size for p in paths if p.exists()),
                "files": len(paths), "codecs": {}, "status": "unreadable", "seconds": 0.0,
                "reason": f"not measured: the worker failed ({described(exc)})"}


def measure_all(todo: list[tuple], plan: SurveyPlan, folder: Path, store: ResultStore, console) -> None:
    """Measure every (source, series) of ``todo``; each finished one goes to the store at once."""
    fetch_root = folder / ".fetch"
    try:
        _measure_loop(todo, plan, folder, store, console, fetch_root)
    finally:  # also on Ctrl-C: no scratch DICOM and no retrieved copy stays behind
        shutil.rmtree(folder / ".scratch", ignore_errors=True)
        shutil.rmtree(fetch_root, ignore_errors=True)


def _measure_loop(todo: list[tuple], plan: SurveyPlan, folder: Path, store: ResultStore, console,
                  fetch_root: Path) -> None:
    with Executor(plan.jobs, plan.scheduler) as ex:
        pending: dict = {}
        queue = list(todo)
        done_count = 0
        while queue or pending:
            while queue and len(pending) < 2 * ex.slots:  # bounded: at most two series per slot fetched ahead
                source, s = queue.pop(0)
                dest = fetch_root / safe_component(series_key(s.series_uid))
                paths = source.fetch_series(s.study_uid, s.series_uid, dest)
                task = {"series_uid": s.series_uid, "paths": [str(p) for p in paths], "specs": list(plan.specs),
                        "lossy_specs": list(plan.lossy_specs),
                        "ffmpeg": plan.ffmpeg, "scratch": str(make_dirs(folder / ".scratch"))}
                pending[ex.submit(task)] = (s, dest, task)
            finished, _ = ex.wait(set(pending))
            for fut in finished:
                s, dest, task = pending.pop(fut)
                record = outcome(fut, task)
                store.append({"cell_id": series_key(s.series_uid), "series_uid": s.series_uid,
                              "settings": store.settings,
                              "row": {"status": "ok" if record["status"] == "ok" else "failed", "measurement": record}})
                shutil.rmtree(dest, ignore_errors=True)  # a PACS series' retrieved copy (never the source)
                done_count += 1
                console.print(f"measured {done_count}/{len(todo)}: {s.modality} series ...{s.series_uid[-12:]} "
                              f"({record['files']} files, {record['seconds']:.1f} s) {record['status']}",
                              highlight=False, markup=False)


def last_records(store: ResultStore, wanted: set) -> dict[str, dict]:
    """Series UID -> its last measurement with these settings (an unreadable series counts as kept as stored)."""
    out = {}
    for rec in store.records():
        if rec.get("settings") == store.settings and rec.get("series_uid") in wanted:
            out[rec["series_uid"]] = rec["row"]["measurement"]
    return out


def make_strata(groups: dict[str, list[SeriesInfo]], measured: dict[str, dict]) -> list[Stratum]:
    out = []
    for name, members in groups.items():
        known = all(s.stored_bytes is not None for s in members)
        raw = all(s.raw_bytes for s in members)
        aux = {s.series_uid: float(s.stored_bytes if known else s.raw_bytes if raw else s.frames) for s in members}
        out.append(Stratum(name, members[0].modality, aux, known,
                           {s.series_uid: float(s.stored_bytes) for s in members if s.stored_bytes is not None},
                           {s.series_uid: measured[s.series_uid] for s in members if s.series_uid in measured}))
    return out


def survey_rows(series: list[SeriesInfo], groups: dict, measured: dict[str, dict], labels: list[str],
                guideline: tuple | None = None) -> list[dict]:
    """One row per (modality, codec) and per (ALL, codec); with ``guideline`` (Guideline, its choices per series)
    one more row per modality flagged lossy, after the lossless ones."""
    all_strata = make_strata(groups, measured)
    x_prior = pooled_cv([st for st in all_strata if not st.bytes_known], stored_values)
    priors = {label: (pooled_cv(all_strata, lambda st, lab=label: codec_values(st, lab, "bytes")), x_prior)
              for label in labels}
    modalities = sorted({st.modality for st in all_strata})
    rows = []
    for modality in modalities + ["ALL"]:
        chosen = [st for st in all_strata if modality in ("ALL", st.modality)]
        uids = {u for st in chosen for u in st.aux}
        studies: dict[str, float] = {}
        for s in series:
            if s.series_uid in uids:
                studies[s.study_uid] = studies.get(s.study_uid, 0.0) + float(s.raw_bytes or s.frames)
        for label in labels:
            row = {"modality": modality, "codec": label, **combine(chosen, label, studies, priors[label])}
            g, choices = guideline or (None, {})
            is_lossy = g is not None and label == g.label  # flagged, in a row of its own: never in a lossless total
            row.update(lossy=is_lossy, guideline=guideline_of(g, choices, uids) if is_lossy else "")
            rows.append(row)
    return rows


def run_survey(sources: list, plan: SurveyPlan, console) -> tuple[Path, dict]:
    """The whole survey; returns (its folder, the survey.json document)."""
    from .output import write_outputs

    started = datetime.now(timezone.utc)
    folder = survey_folder(plan, started)
    series, facts, owner = [], [], {}
    for src in sources:
        found, fact = take_inventory(src, console)
        facts.append(fact)
        for s in found:
            if s.series_uid not in owner:
                owner[s.series_uid] = src
                series.append(s)
        console.print(f"inventory of {fact['source']}: {fact['instances']} instances in {fact['series']} series, "
                      f"{fact['seconds']:.1f} s ({fact['instances_per_s']} instances/s); sizes: {fact['sizes']}"
                      + (f"; {fact['skipped_files']} file(s) not DICOM image instances" if fact["skipped_files"]
                         else ""), highlight=False, markup=False)
    if not series:
        raise MedpipeError("the sources hold no DICOM image instances: nothing to survey")
    groups = strata(series, plan.strata_keys)
    picks = draw(groups, plan.seed, plan.fraction, plan.per_stratum)
    make_dirs(folder)
    store = ResultStore(folder, plan.settings())
    done = {rec.get("series_uid") for rec in store.done().values()}  # an unreadable series is tried again
    by_uid = {s.series_uid: s for s in series}
    wanted = [u for name in picks for u in picks[name]]
    todo = [(owner[u], by_uid[u]) for u in wanted if u not in done]
    console.print(f"sample: {len(wanted)} of {len(series)} series in {len(groups)} strata"
                  + (f"; {len(wanted) - len(todo)} measured before (--resume)" if len(todo) < len(wanted) else ""),
                  highlight=False)
    jobs = plan.jobs or default_jobs()
    if not plan.scheduler:  # a series in a worker needs a few times its pixels: as many as memory allows
        jobs = cap_jobs_for_memory(jobs, [s.raw_bytes or 0 for _, s in todo], console)
    t0 = datetime.now(timezone.utc)
    measure_all(todo, replace(plan, jobs=jobs), folder, store, console)
    measure_s = (datetime.now(timezone.utc) - t0).total_seconds()
    measured = last_records(store, set(wanted))
    labels = [s.label for s in plan.specs]
    if plan.guideline is None:
        rows, lossy_doc = survey_rows(series, groups, measured, labels), None
    else:  # --lossy: the guideline's choice per series, one more "codec" of copied records
        estimated, lossy_doc = held_to(plan.guideline, plan.lossy_specs, measured, console)
        rows = survey_rows(series, groups, estimated, labels + [plan.guideline.label],
                           (plan.guideline, lossy_doc["choices"]))
    doc = {"rows": rows, "inventory": {"sources": facts, "by_modality_syntax": summary(series)},
           "strata": [{"name": n, "series_total": len(groups[n]), "series_sampled": len(picks[n]),
                       "sampled": picks[n]} for n in groups],
           "series": [s.as_dict() for s in series], "measured": measured,
           "seed": plan.seed, "fraction": plan.fraction, "per_stratum": plan.per_stratum,
           "strata_keys": list(plan.strata_keys), "started": started.isoformat(), "measure_s": round(measure_s, 1),
           "jobs": jobs, "lossy": lossy_doc}
    write_outputs(folder, doc, plan, console)
    return folder, doc
