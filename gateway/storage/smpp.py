"""The SMPP channel's parts of concatenated SMS (:class:`gateway.domain.ports.SmsParts`).

A part is kept (committed) before the channel acknowledges it, so the operator redelivers
what a crash lost. The parts of one message are those of one sender with one reference and
one total that are not handled yet; references repeat (an 8-bit one after 256 long
messages), so a handled set is only matched — to recognise a redelivered part — for
:data:`REDELIVERY_WINDOW`, and its rows are deleted after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Connection

from gateway.domain.ports import Assembled
from gateway.storage import tables as t

if TYPE_CHECKING:
    from gateway.storage.database import Database

_p = t.smpp_parts.c
# How long a handled message's parts recognise a redelivered part (then they are deleted).
REDELIVERY_WINDOW = timedelta(hours=1)


class SqlSmsParts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def keep(
        self, source: str, reference: int, total: int, number: int, text: str, now: datetime
    ) -> Assembled | None:
        def keep(conn: Connection) -> Assembled | None:
            rows = conn.execute(
                select(_p.id, _p.number, _p.text, _p.handled_at)
                .where(_p.source == source, _p.reference == reference, _p.total == total)
                .where(_p.handled_at.is_(None) | (_p.handled_at > now - REDELIVERY_WINDOW))
                .order_by(_p.id)
            ).all()
            handled = [r for r in rows if r.handled_at is not None]
            if any(r.number == number and r.text == text for r in handled):
                return None  # a part of a message handled already, delivered again
            open_rows = [r for r in rows if r.handled_at is None]
            if any(r.number == number for r in open_rows):
                return None  # delivered again before its message was complete
            new_id = conn.scalar(
                t.smpp_parts.insert().returning(_p.id),
                {
                    "source": source,
                    "reference": reference,
                    "total": total,
                    "number": number,
                    "text": text,
                    "received_at": now,
                },
            )
            got = {r.number: r.text for r in open_rows} | {number: text}
            if len(got) < total:
                return None
            key = open_rows[0].id if open_rows else int(new_id)
            return Assembled("".join(got[n] for n in sorted(got)), key, len(got), total)

        return await self._db.run(lambda uow: keep(uow.conn))

    async def handled(self, source: str, key: int, now: datetime) -> None:
        def handled(conn: Connection) -> None:
            first = conn.execute(
                select(_p.reference, _p.total).where(_p.id == key, _p.source == source)
            ).first()
            if first is not None:
                conn.execute(
                    t.smpp_parts.update()
                    .where(
                        _p.source == source,
                        _p.reference == first.reference,
                        _p.total == first.total,
                        _p.handled_at.is_(None),
                        _p.id >= key,
                    )
                    .values(handled_at=now)
                )
            conn.execute(t.smpp_parts.delete().where(_p.handled_at < now - REDELIVERY_WINDOW))

        await self._db.run(lambda uow: handled(uow.conn))

    async def expired(self, before: datetime) -> list[tuple[str, Assembled]]:
        def expired(conn: Connection) -> list[tuple[str, Assembled]]:
            rows = conn.execute(
                select(_p.id, _p.source, _p.reference, _p.total, _p.number, _p.text, _p.received_at)
                .where(_p.handled_at.is_(None))
                .order_by(_p.id)
            ).all()
            sets: dict[tuple[str, int, int], list[tuple[int, int, str, datetime]]] = {}
            for r in rows:
                sets.setdefault((r.source, r.reference, r.total), []).append(
                    (r.id, r.number, r.text, r.received_at)
                )
            found = []
            for (source, _reference, total), parts in sets.items():
                if parts[0][3] >= before:
                    continue
                ordered = sorted(parts, key=lambda p: p[1])
                text = " … ".join(p[2] for p in ordered)
                found.append((source, Assembled(text, parts[0][0], len(parts), total)))
            return found

        return await self._db.run(lambda uow: expired(uow.conn))
