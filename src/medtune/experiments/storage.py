"""The experiment queue's database: Optuna's RDB storage (SQLite by default, PostgreSQL for many machines).

Optuna keeps studies, trials, their parameters, user attributes, per-epoch values and heartbeats. Three things
it does not do safely, so they are done here with one conditional SQL statement each:

- **claim** a queued (WAITING) trial: ``UPDATE trials SET state='RUNNING' WHERE trial_id=? AND state='WAITING'``
  and keep it only when exactly one row changed. Optuna's own ``ask()`` reads and then writes; on SQLite, which
  has no ``SELECT ... FOR UPDATE``, two processes can both claim one trial (seen: 24 claims for 20 trials with
  four processes), and with an empty queue it makes a new, empty trial. The first heartbeat and the claimer's
  token are written in the same transaction: a claim whose worker dies (or whose connection drops) right after
  the commit is still taken back a grace period later, and a worker that never heard its commit succeed finds
  its claim again by the token when it retries.
- **requeue** a trial whose worker died: a RUNNING trial whose heartbeat is older than the grace period goes back
  to WAITING (the same trial, so the same run directory, which resumes from its last checkpoint) in the same
  transaction that deletes its heartbeat. Optuna's stale-trial callback instead fails it and copies it to a new
  trial, which on SQLite can happen twice.
- **cancel** a queued trial: WAITING to FAIL only while it is still WAITING.

Everything else goes through Optuna's public API. The private ``_get_stale_trial_ids`` query is the one exception
(pinned to optuna 5).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from medtune.errors import ConfigError, DataError

T = TypeVar("T")

#: Environment variable that sets the storage URL for every queue command.
STORAGE_ENV = "MEDTUNE_STORAGE"
#: The default database: beside the runs it describes.
DEFAULT_DB = Path("runs") / "queue.db"
#: Seconds between a worker's heartbeats, and after which a silent worker's trial is taken back.
HEARTBEAT = 10
GRACE = 60

_CLAIM = "UPDATE trials SET state='RUNNING', datetime_start=:now WHERE trial_id=:tid AND state='WAITING'"
_REQUEUE = "UPDATE trials SET state='WAITING', datetime_start=NULL WHERE trial_id=:tid AND state='RUNNING'"
_CANCEL = "UPDATE trials SET state='FAIL', datetime_complete=:now WHERE trial_id=:tid AND state='WAITING'"
_DROP_BEAT = "DELETE FROM trial_heartbeats WHERE trial_id=:tid"
_FIRST_BEAT = "INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (:tid, CURRENT_TIMESTAMP)"
_MINE = (
    "SELECT t.trial_id FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
    "WHERE t.state='RUNNING' AND a.key='worker' AND a.value_json=:token ORDER BY t.trial_id"
)
_BEATLESS = (
    "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
    "WHERE t.study_id=:sid AND t.state='RUNNING' AND h.trial_id IS NULL AND t.datetime_start < :before"
)


def default_url() -> str:
    """``$MEDTUNE_STORAGE``, else a SQLite file ``runs/queue.db`` under the current folder."""
    return os.environ.get(STORAGE_ENV) or f"sqlite:///{(Path.cwd() / DEFAULT_DB).as_posix()}"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)  # optuna 5 stores naive UTC


def hide_password(url: str) -> str:
    """The URL as it may be printed.

    >>> hide_password("postgresql://me:secret@db:5432/q")
    'postgresql://me:***@db:5432/q'
    """
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class QueueStorage:
    """One experiment database.

    Args:
        url: SQLAlchemy URL: ``sqlite:///path/queue.db`` or ``postgresql://user@host:5432/db``.
        heartbeat: seconds between heartbeats of a running trial.
        grace: seconds without a heartbeat after which a running trial is taken back and queued again.

    Raises:
        ConfigError: the URL is malformed or names a database whose driver is not installed.
        DataError: the database cannot be reached or opened.
    """

    def __init__(self, url: str | None = None, heartbeat: int = HEARTBEAT, grace: int = GRACE) -> None:
        import optuna

        self.url = _with_driver(url or default_url())
        if grace <= heartbeat:
            raise ConfigError(f"the grace period ({grace} s) must be longer than the heartbeat ({heartbeat} s)")
        self.heartbeat, self.grace = int(heartbeat), int(grace)
        engine_kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Optuna's own tests use a long timeout: several workers write to one file
            engine_kwargs = {"connect_args": {"timeout": 60}}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat_interval is "experimental"
                self.rdb = optuna.storages.RDBStorage(
                    self.url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=self.heartbeat,
                    grace_period=self.grace,
                )
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"the storage {hide_password(self.url)} needs the Python package {exc.name!r}: "
                "pip install 'medtune[postgres]' (psycopg2-binary)"
            ) from None
        except ImportError as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            raise ConfigError(
                f"the storage {hide_password(self.url)} cannot be used: {exc}{cause}; for PostgreSQL: "
                "pip install 'medtune[postgres]' (psycopg2-binary)"
            ) from None
        except Exception as exc:  # sqlalchemy's ArgumentError/OperationalError and optuna's RuntimeError
            raise DataError(
                f"cannot open the experiment database {hide_password(self.url)}: {_first_line(exc)}; check the "
                "URL (sqlite:///path/queue.db or postgresql://user@host:5432/db) and that the server is running"
            ) from None
        if self.url.startswith("sqlite"):
            with self.rdb.engine.connect() as conn:  # readers (status) no longer block writers (workers)
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")

    def __repr__(self) -> str:
        return f"QueueStorage({hide_password(self.url)!r})"

    @property
    def engine(self) -> Any:
        return self.rdb.engine

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection inside one transaction (committed on leaving, rolled back on an error)."""
        with self.engine.begin() as conn:
            yield conn

    # -- studies ------------------------------------------------------------------------------------------------
    def study(self, name: str, sampler: Any = None, pruner: Any = None) -> Any:
        """Load an existing study by name."""
        import optuna

        try:
            return optuna.load_study(study_name=name, storage=self.rdb, sampler=sampler, pruner=pruner)
        except KeyError:
            known = ", ".join(self.study_names()) or "none yet"
            raise DataError(f"no study {name!r} in {hide_password(self.url)} (studies: {known})") from None

    def create_study(self, name: str, direction: str = "maximize", attrs: dict[str, Any] | None = None) -> Any:
        """Create a study, or load it when it exists (its settings are then checked against `attrs`)."""
        import optuna

        study = optuna.create_study(study_name=name, storage=self.rdb, direction=direction, load_if_exists=True)
        for key, value in (attrs or {}).items():
            old = study.user_attrs.get(key)
            if old is None:
                study.set_user_attr(key, value)
            elif old != value:
                raise ConfigError(
                    f"study {name!r} already exists with {key}={old!r}, not {value!r}; choose another --study name"
                )
        return study

    def study_names(self) -> list[str]:
        return [s.study_name for s in self.rdb.get_all_studies()]

    def study_ids(self, names: Sequence[str] | None = None) -> list[int]:
        """Ids of the named studies (all when `names` is empty)."""
        if not names:
            return [s._study_id for s in self.rdb.get_all_studies()]
        ids = []
        for name in names:
            try:
                ids.append(self.rdb.get_study_id_from_name(name))
            except KeyError:
                known = ", ".join(self.study_names()) or "none yet"
                raise DataError(f"no study {name!r} in {hide_password(self.url)} (studies: {known})") from None
        return ids

    # -- the queue ----------------------------------------------------------------------------------------------
    def claim(self, study_ids: Sequence[int] | None = None, token: str | None = None) -> int | None:
        """Take the oldest queued trial (of `study_ids`, default all) for this process; None when none is queued.

        Exactly one caller gets each trial, on SQLite as on PostgreSQL: the state changes from WAITING to RUNNING
        only while it is still WAITING. Its first heartbeat, and `token` as its ``worker`` attribute, are written
        in the same transaction, so no trial is ever RUNNING without a heartbeat (one whose claimer dies right
        after the commit is taken back by `stale` like any other).

        Args:
            study_ids: the studies to claim from.
            token: the claimer's token, new for each claim and the same when a claim is retried: a retry after a
                commit that went through but whose answer was lost (a dropped connection) returns that trial
                instead of claiming a second one.
        """
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            if token is not None:
                mine = conn.execute(sa.text(_MINE), {"token": json.dumps(token)}).first()
                conn.commit()
                if mine is not None:
                    return int(mine[0])
            query = "SELECT trial_id, study_id FROM trials WHERE state='WAITING' ORDER BY trial_id"
            rows = [(r[0], r[1]) for r in conn.execute(sa.text(query))]
            conn.commit()
            for trial_id, study_id in rows:
                if study_ids is not None and study_id not in study_ids:
                    continue
                if self._take(conn, trial_id, token):
                    return trial_id
        return None

    @staticmethod
    def _take(conn: Any, trial_id: int, token: str | None) -> bool:
        """Claim `trial_id` in one transaction on `conn`, with its first heartbeat and `token`; False when another
        worker took it first."""
        import sqlalchemy as sa

        taken = conn.execute(sa.text(_CLAIM), {"tid": trial_id, "now": _utcnow()}).rowcount == 1
        if taken:
            conn.execute(sa.text(_DROP_BEAT), {"tid": trial_id})
            conn.execute(sa.text(_FIRST_BEAT), {"tid": trial_id})
            if token is not None:
                set_attr(conn, trial_id, "worker", token)
        conn.commit()  # an error before this rolls the whole claim back when the connection closes
        return taken

    def beat(self, trial_id: int) -> None:
        """Record that the worker of `trial_id` is alive."""
        self.rdb.record_heartbeat(trial_id)

    def stale(self, study_ids: Sequence[int]) -> list[int]:
        """RUNNING trials whose last heartbeat is older than the grace period (database clock), and those without
        any heartbeat claimed more than a grace period ago: earlier versions of `claim` recorded the first heartbeat
        after the commit, so a worker killed in between left its trial RUNNING with none, and Optuna's query
        skips such trials."""
        import sqlalchemy as sa

        stale = [tid for sid in study_ids for tid in self.rdb._get_stale_trial_ids(sid)]
        before = _utcnow() - dt.timedelta(seconds=self.grace)
        with self.engine.connect() as conn:
            for sid in study_ids:
                stale += [row[0] for row in conn.execute(sa.text(_BEATLESS), {"sid": sid, "before": before})]
        return sorted(set(stale))

    def requeue(self, trial_id: int) -> bool:
        """Put a RUNNING trial back in the queue (the same trial: it resumes in its run directory).

        Returns:
            False when the trial was no longer RUNNING (another worker requeued or finished it first).
        """
        import sqlalchemy as sa

        with self.transaction() as conn:
            if conn.execute(sa.text(_REQUEUE), {"tid": trial_id}).rowcount != 1:
                return False
            conn.execute(sa.text(_DROP_BEAT), {"tid": trial_id})  # else the old beat makes it stale at once
        return True

    def fail_running(self, trial_id: int, error: str) -> bool:
        """Fail a RUNNING trial with `error` (only while it is still RUNNING); False when it no longer was."""
        import sqlalchemy as sa

        with self.transaction() as conn:
            failed = "UPDATE trials SET state='FAIL', datetime_complete=:now WHERE trial_id=:tid AND state='RUNNING'"
            if conn.execute(sa.text(failed), {"tid": trial_id, "now": _utcnow()}).rowcount != 1:
                return False
            conn.execute(sa.text(_DROP_BEAT), {"tid": trial_id})
            set_attr(conn, trial_id, "error", error)
        return True

    def cancel_waiting(self, trial_id: int) -> bool:
        """Cancel a queued trial; False when it is no longer queued (a worker claimed it meanwhile)."""
        import sqlalchemy as sa

        with self.transaction() as conn:
            return conn.execute(sa.text(_CANCEL), {"tid": trial_id, "now": _utcnow()}).rowcount == 1

    def count(self, state: str, study_ids: Sequence[int] | None = None) -> int:
        """Trials in `state` (WAITING, RUNNING...), in `study_ids` or in all studies."""
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT study_id FROM trials WHERE state=:s"), {"s": state}).all()
        return sum(1 for (sid,) in rows if study_ids is None or sid in study_ids)

    def trial(self, trial_id: int) -> Any:
        """The `FrozenTrial` with this id."""
        try:
            return self.rdb.get_trial(trial_id)
        except KeyError:
            raise DataError(f"there is no experiment {trial_id} in {hide_password(self.url)}") from None

    def trials(self, study_ids: Sequence[int] | None = None) -> list[tuple[str, Any]]:
        """``(study name, FrozenTrial)`` for every trial, oldest first."""
        out = []
        for study in self.rdb.get_all_studies():
            if study_ids is not None and study._study_id not in study_ids:
                continue
            out.extend((study.study_name, t) for t in self.rdb.get_all_trials(study._study_id, deepcopy=False))
        return sorted(out, key=lambda item: item[1]._trial_id)

    def study_of(self, trial_id: int) -> str:
        """The name of the study that holds `trial_id`."""
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT study_id FROM trials WHERE trial_id=:t"), {"t": trial_id}).first()
        if row is None:
            raise DataError(f"there is no experiment {trial_id} in {hide_password(self.url)}")
        return self.rdb.get_study_name_from_id(row[0])


#: Seconds a worker keeps retrying an unreachable database before it gives up with a named error.
PATIENCE = 600.0


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database is gone for now (server stopped or restarting, connection dropped, SQLite
    locked past its timeout) rather than that the request was wrong."""
    import optuna
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    gone = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, optuna.exceptions.StorageInternalError)
    return isinstance(exc, gone) or (exc.__cause__ is not None and unreachable(exc.__cause__))


class Outages:
    """Retries with backoff while the database is unreachable, and remembers when the last outage ended: workers'
    heartbeats could not be recorded during it, so silent experiments are taken back only a grace period later."""

    def __init__(self, url: str, grace: float, patience: float = PATIENCE) -> None:
        self.url, self.grace, self.patience = url, grace, patience
        self.ended = -math.inf

    def settled(self) -> bool:
        """A grace period has passed since the last outage ended (heartbeats are current again)."""
        return time.monotonic() - self.ended > self.grace

    def retry(self, call: Callable[[], T], what: str, say: Callable[[str], None]) -> T:
        """`call()`, retried with backoff (1 s doubling to 30 s) while the database is unreachable, for at most
        `patience` seconds; each wait is said with `say`.

        Raises:
            DataError: still unreachable after `patience` seconds.
        """
        start, delay, failed = time.monotonic(), 1.0, False
        while True:
            try:
                result = call()
            except Exception as exc:
                if not unreachable(exc):
                    raise
                waited = time.monotonic() - start
                if waited > self.patience:
                    raise DataError(
                        f"the experiment database {hide_password(self.url)} has been unreachable for {waited:.0f} s "
                        f"while {what} ({_first_line(exc)}); start it again, then `medtune queue run` carries on"
                    ) from None
                say(f"database unreachable while {what} ({_first_line(exc)[:120]}); retrying in {delay:.0f} s")
                failed = True
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if failed:
                self.ended = time.monotonic()
                say(f"database reachable again after {time.monotonic() - start:.0f} s; carrying on")
            return result


def set_attr(conn: Any, trial_id: int, key: str, value: Any) -> None:
    """Set a user attribute inside `conn`'s transaction, also on an ended trial (Optuna's API refuses those)."""
    import sqlalchemy as sa

    params = {"t": trial_id, "k": key, "v": json.dumps(value)}
    update = "UPDATE trial_user_attributes SET value_json=:v WHERE trial_id=:t AND key=:k"
    if conn.execute(sa.text(update), params).rowcount == 0:
        insert = "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (:t, :k, :v)"
        conn.execute(sa.text(insert), params)


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg 3, 2.0 to psycopg2,
    and medtune's ``postgres`` extra installs psycopg2.

    >>> _with_driver("sqlite:///q.db")
    'sqlite:///q.db'
    """
    import importlib.util

    if not url.startswith(("postgresql://", "postgres://")):
        return url
    rest = url.split("://", 1)[1]
    for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return f"postgresql://{rest}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
