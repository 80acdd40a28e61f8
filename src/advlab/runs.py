"""Run directories: the contract every advlab job writes and every tool reads.

A run directory holds

- ``manifest.json``: versions, git commit, device, seed, command line, start/end times, status;
- ``config.yaml``: the fully resolved configuration;
- ``results.jsonl``: one JSON object per item, appended atomically (flushed and fsynced),
  never rewritten;
- ``metrics.json``: aggregates computed from ``results.jsonl``;
- ``figures/*.png`` and ``report.html`` where the job has something to show.

Re-running the same command on the same directory resumes: items whose ``id`` is
already in ``results.jsonl`` are skipped. A crash can leave at most one partial
last line; it is discarded on resume. A config that differs from the recorded one
is refused, naming the differing keys. A lock file refuses a second writer.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from advlab import distributed
from advlab.errors import RunDirError
from advlab.runfiles import (  # noqa: F401 - re-exported: callers import them from advlab.runs
    _now,
    atomic_write_json,
    atomic_write_text,
    config_diff,
    read_records,
    to_jsonable,
)
from advlab.utils import environment_versions, git_commit

try:  # POSIX advisory locks serialise appends from several processes of one run
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """One run directory, used as a context manager by exactly one job.

    ``rank``/``world_size`` let several processes of one distributed job share a run:
    rank 0 owns the lock, manifest, config and metrics; every rank appends records.
    ``resume_ignore`` lists config keys that may change on resume (e.g. ``limit``, ``device``).
    """

    def __init__(
        self,
        path: str | Path,
        job: str,
        config: Mapping[str, Any] | Any,
        *,
        seed: int | None = None,
        device: str | None = None,
        argv: list[str] | None = None,
        resume_ignore: Iterable[str] = ("device",),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.path = Path(path)
        self.job = job
        self.config = to_jsonable(config)
        self.seed = seed
        self.device = str(device) if device is not None else None
        self.argv = list(argv if argv is not None else sys.argv)
        self.resume_ignore = tuple(resume_ignore)
        self.rank = rank
        self.world_size = world_size
        self._records: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._locked = False
        self.resumed = False

    # ---- paths -------------------------------------------------------------------
    @property
    def results_path(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def figures_dir(self) -> Path:
        d = self.path / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    # ---- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> RunDir:
        self.open_all_ranks()
        return self

    def open_all_ranks(self) -> None:
        """:meth:`open` on every process of a launched job: rank 0 creates, locks and checks the directory
        while the others wait, and when it refuses (another config, a live lock) every rank raises the same
        one-line error instead of waiting at a barrier. In one process this is just :meth:`open`."""

        opened: list[bool] = []

        def open_here() -> None:
            self.open()
            opened.append(True)

        distributed.main_first(open_here)
        if not opened:  # a waiting rank: rank 0 has prepared the directory
            self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            status = "done"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "interrupted"
        else:
            status = "failed"
        self.close(status)

    def open(self) -> None:
        check_out_path(self.path)
        if self.rank == 0:
            self.path.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
            try:
                self._check_config()
                self._repair_partial_line()
                self._write_manifest(status="running")
            except BaseException:
                self._release_lock()
                raise
        self._load_records()

    def close(self, status: str = "done") -> None:
        if self.rank == 0:
            manifest = self._read_manifest()
            manifest["status"] = status
            manifest["ended"] = _now()
            atomic_write_json(self.manifest_path, manifest)
            self._release_lock()

    # ---- lock --------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        host = socket.gethostname()
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    info = json.loads(self.lock_path.read_text() or "{}")
                except (OSError, json.JSONDecodeError):
                    info = {}
                pid, other_host = int(info.get("pid", -1)), info.get("host")
                if pid > 0 and other_host == host and not _pid_alive(pid):
                    self.lock_path.unlink(missing_ok=True)  # stale lock of a dead process
                    continue
                raise RunDirError(
                    f"{self.path} is in use by process {pid} on {other_host}; wait for it to finish, "
                    f"or pass another --out (delete {self.lock_path.name} there only if that process is gone)"
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump({"pid": os.getpid(), "host": host, "since": _now()}, fh)
            self._locked = True
            return

    def _release_lock(self) -> None:
        if self._locked:
            self.lock_path.unlink(missing_ok=True)
            self._locked = False

    # ---- config / manifest -------------------------------------------------------
    def _check_config(self) -> None:
        cfg_path = self.path / "config.yaml"
        if cfg_path.exists():
            old = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
            old_job = (self._read_manifest() or {}).get("job")
            if old_job and old_job != self.job:
                raise RunDirError(
                    f"{self.path} holds a '{old_job}' run, not '{self.job}'; pass another --out"
                )
            diff = config_diff(old, self.config, self.resume_ignore)
            if diff:
                raise RunDirError(
                    f"{self.path} was started with a different config ({', '.join(diff)}); "
                    "re-run with the same options to resume, or pass a new --out"
                )
            self.resumed = True
        else:
            atomic_write_text(cfg_path, yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True))

    def _read_manifest(self) -> dict[str, Any]:
        if self.manifest_path.exists():
            try:
                return json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                return {}
        return {}

    def _write_manifest(self, status: str) -> None:

        old = self._read_manifest()
        manifest = {
            "job": self.job,
            "advlab_version": environment_versions()["advlab"],
            "git_commit": git_commit(),
            "versions": environment_versions(),
            "device": self.device,
            "seed": self.seed,
            "command": self.argv,
            "started": old.get("started", _now()),
            "resumed_at": ([*old.get("resumed_at", []), _now()] if old else []),
            "ended": None,
            "status": status,
            "world_size": self.world_size,
        }
        atomic_write_json(self.manifest_path, manifest)

    def update_manifest(self, **fields: Any) -> None:
        """Add job-specific fields (e.g. the attack budget) to the manifest."""
        if self.rank == 0:
            manifest = self._read_manifest()
            manifest.update(to_jsonable(fields))
            atomic_write_json(self.manifest_path, manifest)

    # ---- records -----------------------------------------------------------------
    def _repair_partial_line(self) -> None:
        """Cut a partial last line (a crash mid-write) so that appends start on a fresh line."""
        p = self.results_path
        if not p.exists():
            return
        data = p.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        with open(p, "r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())

    def _load_records(self) -> None:
        self._records = read_records(self.results_path)
        self._ids = {str(r.get("id")) for r in self._records}

    @property
    def records(self) -> list[dict[str, Any]]:
        """Records of this run so far (from disk at open, plus those appended since)."""
        return list(self._records)

    def all_records(self) -> list[dict[str, Any]]:
        """Re-read every record from disk (includes those written by other ranks)."""
        return read_records(self.results_path)

    def done_ids(self) -> set[str]:
        return set(self._ids)

    def is_done(self, item_id: Any) -> bool:
        return str(item_id) in self._ids

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record atomically: one line, flushed and fsynced, under a file lock."""
        rec = to_jsonable(record)
        if "id" not in rec:
            raise ValueError("a result record needs an 'id'")
        key = str(rec["id"])
        if key in self._ids:
            raise ValueError(f"record {key!r} is already in {self.results_path}")
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
        with open(self.results_path, "ab") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        self._records.append(rec)
        self._ids.add(key)

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        if self.rank == 0:
            atomic_write_json(self.path / "metrics.json", metrics)

    def share(self, items: Iterable[Any], replicated: bool = False) -> list[Any]:
        """This rank's share of ``items``: round-robin over ``world_size``, or all of them when ``replicated``
        (every rank runs every item, e.g. a training whose steps are data-parallel)."""
        items = list(items)
        return items if replicated else [it for i, it in enumerate(items) if i % self.world_size == self.rank]


def check_out_path(path: str | Path) -> Path:
    """Refuse an ``--out`` that exists and is not a directory."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RunDirError(f"--out {p} is a file, not a directory; pass a directory path")
    if p.parent.exists() and not p.parent.is_dir():
        raise RunDirError(f"--out {p}: {p.parent} is a file; pass a path inside a directory")
    return p


def load_run(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Read a finished or partial run: (manifest, config, records, metrics)."""
    p = Path(path)
    if not p.is_dir() or not (p / "manifest.json").exists():
        raise RunDirError(f"{p} is not an advlab run directory (no manifest.json); pass the --out of a run")
    manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    cfg_path = p / "config.yaml"
    config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else {}
    records = read_records(p / "results.jsonl")
    metrics_path = p / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
    return manifest, config or {}, records, metrics
