"""Plain INSERTs for new ORM objects on the hot path.

Every event writes a protocol, an event and its notifications, and none of them changes
again in that transaction. The unit of work (`Session.flush`) spends more on bookkeeping
for them than SQLite spends writing them (a third of an event's CPU, profiled); these
write each object's set attributes with one Core `INSERT … RETURNING id` and put the id
on the object, which stays outside the session. An edit made to such an object
afterwards is not written: use `session.add` for rows that change. The INSERTs go straight
to the driver on the transaction's connection where there is one (store/drivers.py): on
PostgreSQL, rows of one shape in one statement a thousand, one round trip each.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session

from gateway.store import drivers

T = TypeVar("T")


def new(model: type[T], **values: Any) -> T:
    """A new object of `model` holding `values`, as `model(**values)` builds it but without
    the ORM's attribute events: ~1 µs instead of ~19 for a notification, and an event builds
    four such objects. The values go straight into the object's dict, where both these
    INSERTs and a session's flush read a new object's values; attributes read, and set
    afterwards, as on any other."""
    unknown = values.keys() - _attributes(model)
    if unknown:
        raise TypeError(f"{', '.join(sorted(unknown))}: not a column of {model.__name__}")
    obj = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    validated = _validated(model)
    obj.__dict__.update({k: v for k, v in values.items() if k not in validated} if validated else values)
    for key in validated & values.keys():  # through the attribute, so that its @validates runs
        setattr(obj, key, values[key])
    return obj  # type: ignore[no-any-return]


@cache
def _attributes(model: type) -> frozenset[str]:
    return frozenset(attr for attr, _ in _columns(model))


@cache
def _validated(model: type) -> frozenset[str]:
    """The attributes with a @validates hook (Protocol.consumer_email keeps its digest)."""
    return frozenset(inspect(model).validators)


@cache
def _columns(model: type) -> tuple[tuple[str, str], ...]:
    """(attribute, column) names of a mapped class: they differ where a column is renamed."""
    return tuple((attr.key, attr.columns[0].key) for attr in inspect(model).column_attrs)


def _values(obj: Any) -> dict[str, Any]:
    given = vars(obj)  # only what was set: a column left out gets its default, as with flush
    return {column: given[attr] for attr, column in _columns(type(obj)) if attr in given and attr != "id"}


@cache
def _insert(model: type, many: bool) -> Any:
    # Built once: a statement built per row spends more on building and cache keys than on SQLite.
    table = model.__table__  # type: ignore[attr-defined]
    return insert(table).returning(table.c.id, sort_by_parameter_order=many)


def insert_one(session: Session, obj: Any) -> None:
    values = _values(obj)
    table = type(obj).__table__
    driver = drivers.under(session)
    if driver is not None and driver.can_insert(table, tuple(values)):
        obj.id = driver.insert(table, values)
    else:
        obj.id = session.execute(_insert(type(obj), False), values).scalar_one()


def insert_many(session: Session, objs: Sequence[Any]) -> None:
    """One statement per shape of row and thousand rows (on SQLite, one execute a row), the ids
    handed back in the order of `objs`."""
    groups: dict[tuple[type, tuple[str, ...]], list[tuple[Any, dict[str, Any]]]] = {}
    for obj in objs:
        values = _values(obj)
        groups.setdefault((type(obj), tuple(values)), []).append((obj, values))
    driver = drivers.under(session)
    for (model, columns), members in groups.items():
        table = model.__table__  # type: ignore[attr-defined]
        rows = [values for _, values in members]
        if driver is not None and driver.can_insert(table, columns):
            ids = driver.insert_rows(table, rows)
        else:
            ids = session.execute(_insert(model, True), rows).scalars().all()
        for (obj, _), new_id in zip(members, ids, strict=True):
            obj.id = new_id


def insert_event(session: Session, event: Any, notifications: Sequence[Any]) -> bool:
    """On PostgreSQL, `event` and its `notifications` (at least one) in one statement, each given
    its id and the notifications their `event_id`; `event.answer` must name the notifications, in
    order, with a null id: they are filled in the stored answer (store/postgres_event.py). False,
    with nothing written, where that path does not go: the caller writes them one by one."""
    driver = drivers.under(session)
    if driver is None or driver.name != "postgresql":
        return False
    values, events = _values(event), type(event).__table__
    rows = [_values(n) for n in notifications]
    table = type(notifications[0]).__table__
    if not driver.can_insert(events, tuple(values)):
        return False
    for shape in {tuple(row) for row in rows}:  # several where one channel has columns another leaves out
        if "event_id" in shape or not driver.can_insert(table, shape):
            return False
    written = driver.insert_event(events, values, table, rows)  # type: ignore[attr-defined]
    if written is None:
        return False
    event.id, ids = written
    for notification, new_id in zip(notifications, ids, strict=True):
        notification.id, notification.event_id = new_id, event.id
    return True
