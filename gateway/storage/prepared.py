"""Statements compiled once and run straight on the driver's cursor: the intake's hot path.

Profiling the webhook on SQLite (``bench/README.md``, issue 13) showed that most of the
writer thread's time went to SQLAlchemy's per-execution machinery (execution context,
compiled-cache lookup, parameter and row objects), not to SQLite: about 25 µs a
statement against 5 µs for the statement itself, and a message runs about a dozen. A
:class:`Prepared` statement is compiled once per dialect with SQLAlchemy — the same SQL,
the same bind and result type processing (``Decimal`` as text, UTC timestamps) — and runs
on the DBAPI cursor of the unit of work's connection, inside its transaction: SQLite's
own, or the asyncpg adapter's of SQLAlchemy (which starts the transaction, keeps
asyncpg's prepared statements and translates asyncpg's errors, as for every other
statement). A driver's error goes through the connection's own handling, so it is raised
as SQLAlchemy's (``IntegrityError``, ``OperationalError``) and a lost connection is
invalidated: callers and :class:`~gateway.storage.database.Database` see exactly what
``Connection.execute`` gives. On other databases it is ``Connection.execute`` unchanged.

Statements about a batch's many keys use :class:`OneOf`, not ``IN`` with an expanding
parameter (which cannot be prepared): on PostgreSQL one array parameter; on SQLite a
prepared statement keeps one variant per length of its lists, each with one parameter
per element. An ``INSERT`` must be given every column it names.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Insert,
    Select,
    Table,
    Update,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

# Type processors by the positions of the values they process (the others need none).
Processed = tuple[tuple[int, Callable[[Any], Any]], ...]
Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    # Makes a row (a named tuple) of a SELECT's values.
    make: Callable[[Iterable[Any]], tuple[Any, ...]] | None
    # The parameters' values in ``names`` order, as a tuple (``operator.itemgetter``),
    # and the positions whose type processes a bound value, with its processor: a row
    # of ten values and one timestamp calls one function in Python, not ten.
    pick: Callable[[Params], tuple[Any, ...]]
    processed: Processed


class Prepared:
    """One SELECT, INSERT or UPDATE, compiled on first use per dialect (see the module's
    notes)."""

    def __init__(
        self, statement: Select[Any] | Insert | Update, *, columns: Sequence[str] = ()
    ) -> None:
        """``columns``: for an INSERT, the columns every row gives (in any order)."""
        self.statement = statement
        self._columns = tuple(columns)
        self._compiled: dict[str, _Compiled] = {}
        # The statement's OneOf lists by name; on SQLite, one variant per their lengths.
        self._lists = sorted({e.name for e in visitors.iterate(statement) if isinstance(e, OneOf)})
        self._variants: dict[tuple[int, ...], Prepared] = {}
        # A SELECT's result processors by dialect, with their columns' positions.
        self._results: dict[str, Processed] = {}
        # An INSERT's rows as arrays, on PostgreSQL (made on first use).
        self._arrays: Prepared | None = None

    def all(self, conn: Connection, params: Params) -> Sequence[Any]:
        """Every row, with attribute access by column name (as ``Row`` has)."""
        prepared = self._on_cursor(conn, params)
        if prepared is None:
            return conn.execute(self.statement, dict(params)).all()
        compiled, values = prepared
        cursor = _run(conn, compiled, values)
        rows: list[Any] = cursor.fetchall()
        if not rows:
            return rows
        make = compiled.make
        assert make is not None
        processed = self._result_processors(conn.dialect, cursor.description)
        if not processed:
            return [make(r) for r in rows]
        return [make(_processed(row, processed)) for row in rows]

    def first(self, conn: Connection, params: Params) -> Any | None:
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, params: Params) -> Any:
        row = self.first(conn, params)
        return None if row is None else row[0]

    def insert_each(self, conn: Connection, rows: Sequence[Params]) -> list[int]:
        """Insert rows; their new primary keys, in the rows' order."""
        if not rows:
            return []
        if conn.dialect.name == "postgresql":
            # The keys a sequence gives one statement's rows rise in the rows' order.
            return sorted(int(r[0]) for r in self._insert_arrays(conn, rows).fetchall())
        if conn.dialect.name != "sqlite":
            assert isinstance(self.statement, Insert)
            (key,) = self.statement.table.primary_key
            returning = self.statement.returning(key, sort_by_parameter_order=True)
            return [int(r[0]) for r in conn.execute(returning, [dict(r) for r in rows])]
        compiled = self.compiled(conn.dialect)
        return _run_each(conn, compiled, [_values(compiled, row) for row in rows])

    def execute(self, conn: Connection, params: Params) -> None:
        """Run an UPDATE (or an INSERT whose key is not needed) once."""
        prepared = self._on_cursor(conn, params)
        if prepared is None:
            conn.execute(self.statement, dict(params))
            return
        compiled, values = prepared
        _run(conn, compiled, values)

    def _on_cursor(self, conn: Connection, params: Params) -> tuple[_Compiled, list[Any]] | None:
        """What runs on the driver's cursor: the statement compiled — or, on SQLite with
        OneOf lists, its variant for their lengths — and the values to bind. None where
        SQLAlchemy runs it: another database, or on SQLite lists of more than
        :data:`_VARIANT_MAX` elements in all (not worth a variant for that one length)."""
        if conn.dialect.name not in _ON_CURSOR:
            return None
        if not self._lists or conn.dialect.name == "postgresql":  # lists are arrays there
            compiled = self.compiled(conn.dialect)
            return compiled, _values(compiled, params)
        lengths = tuple(len(params[name]) for name in self._lists)
        if sum(lengths) > _VARIANT_MAX:
            return None
        variant, spread = self._variant(lengths, params)
        compiled = variant.compiled(conn.dialect)
        return compiled, _values(compiled, spread)

    def _variant(self, lengths: tuple[int, ...], params: Params) -> tuple[Prepared, Params]:
        """This statement with each OneOf list as ``IN`` one parameter per element, for
        the lists' ``lengths`` (made once per lengths), and the parameters spread to
        match."""
        variant = self._variants.get(lengths)
        if variant is None:
            sizes = dict(zip(self._lists, lengths, strict=True))

            def spread(element: Any, **_kw: Any) -> Any:
                if isinstance(element, OneOf):
                    names = [_element_name(element.name, i) for i in range(sizes[element.name])]
                    return element.column.in_([bindparam(name) for name in names])
                return None

            spread_statement = visitors.replacement_traverse(
                cast(visitors.ExternallyTraversible, self.statement), {}, spread
            )
            variant = Prepared(cast(Select[Any] | Insert | Update, spread_statement))
            self._variants[lengths] = variant
        spread_params = {k: v for k, v in params.items() if k not in self._lists}
        for name in self._lists:
            for i, value in enumerate(params[name]):
                spread_params[_element_name(name, i)] = value
        return variant, spread_params

    def execute_many(self, conn: Connection, rows: Sequence[Params]) -> None:
        """The INSERT or UPDATE once per row, in one ``executemany``."""
        if not rows:
            return
        if conn.dialect.name not in _ON_CURSOR:
            conn.execute(self.statement, [dict(r) for r in rows])
            return
        if conn.dialect.name == "postgresql" and isinstance(self.statement, Insert):
            self._insert_arrays(conn, rows)
            return
        compiled = self.compiled(conn.dialect)
        _run(conn, compiled, [_values(compiled, r) for r in rows], many=True)

    def _insert_arrays(self, conn: Connection, rows: Sequence[Params]) -> Any:
        """An INSERT's rows in one execution on PostgreSQL: each column's values bound as
        one array, the rows made by ``unnest`` in their order, their keys returned. One
        statement for any number of rows, planned once per connection: a list of
        ``VALUES`` is a statement per length, each planned afresh, and ``executemany``
        runs the statement once per row."""
        if self._arrays is None:
            assert isinstance(self.statement, Insert)
            table = self.statement.table
            assert isinstance(table, Table)
            (key,) = table.primary_key
            columns = [table.c[name] for name in self._columns]
            unnested = (
                func.unnest(*[bindparam(c.name, type_=ARRAY(c.type)) for c in columns])
                .table_valued(*[c.name for c in columns], with_ordinality="row_number")
                .render_derived(name="given")
            )
            ordered = select(*[unnested.c[c.name] for c in columns]).order_by(unnested.c.row_number)
            self._arrays = Prepared(
                table.insert().from_select(self._columns, ordered).returning(key),
                columns=self._columns,
            )
        compiled = self._arrays.compiled(conn.dialect)
        arrays = {name: [row[name] for row in rows] for name in self._columns}
        return _run(conn, compiled, _values(compiled, arrays))

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The statement as compiled for ``dialect`` (once); a statement that cannot be
        prepared raises ``ValueError`` here."""
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        statement = self.statement
        if isinstance(statement, Insert):
            compiled = statement.compile(dialect=dialect, column_keys=list(self._columns))
        else:
            compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        if any(binds[name].expanding for name in names):
            raise ValueError("a statement with an expanding parameter cannot be prepared")
        defaults = {
            name: binds[name].effective_value
            for name in names
            if not binds[name].required and name not in self._columns
        }
        if isinstance(statement, Insert):
            missing = set(names) - set(self._columns)
            if missing:
                raise ValueError(f"the insert names columns no row gives: {sorted(missing)}")
        processors = tuple(binds[name].type._cached_bind_processor(dialect) for name in names)
        make = None
        if isinstance(statement, Select):
            columns = list(statement.selected_columns)
            keys = [column.key or f"column_{i}" for i, column in enumerate(columns)]
            row: Any = namedtuple("PreparedRow", keys, rename=True)  # type: ignore[misc]
            make = row._make
        return _Compiled(
            sql=compiled.string,
            names=names,
            defaults=defaults,
            make=make,
            pick=_picker(names),
            processed=tuple((i, p) for i, p in enumerate(processors) if p is not None),
        )

    def _result_processors(
        self, dialect: Dialect, description: Sequence[Sequence[Any]]
    ) -> Processed:
        """The SELECT's result processors for ``dialect``, by the column types the driver
        described (asyncpg's numeric processing depends on the type PostgreSQL sent;
        SQLite describes none), with the positions of their columns: worked out on the
        first result; empty where no column needs one."""
        found = self._results.get(dialect.name)
        if found is None:
            assert isinstance(self.statement, Select)
            columns = self.statement.selected_columns
            processors = (
                column.type._cached_result_processor(dialect, described[1])
                for column, described in zip(columns, description, strict=True)
            )
            found = tuple((i, p) for i, p in enumerate(processors) if p is not None)
            self._results[dialect.name] = found
        return found


# The most list elements a variant of a statement binds (batches of messages and of the
# relay stay below; the accounts of an elder's list of 500 lines go through SQLAlchemy).
_VARIANT_MAX = 256


# The dialects whose DBAPI cursor runs prepared statements (SQLAlchemy runs them elsewhere).
_ON_CURSOR = frozenset({"sqlite", "postgresql"})


def _element_name(name: str, index: int) -> str:
    return f"{name}__{index}"


def insert_into(table: Table, *, leaving_out: Sequence[str] = ()) -> Prepared:
    """An INSERT of every column of ``table`` but its generated key and ``leaving_out``
    (which take NULL): each row must give all the others."""
    left = set(leaving_out)
    if table.autoincrement_column is not None:
        left.add(table.autoincrement_column.name)
    return Prepared(table.insert(), columns=[c.name for c in table.columns if c.name not in left])


def _values(compiled: _Compiled, params: Params) -> list[Any]:
    """The values to bind, in the statement's order, through their types' processors."""
    if compiled.defaults:
        params = {**compiled.defaults, **params}
    return _processed(compiled.pick(params), compiled.processed)


def _processed(row: Iterable[Any], processed: Processed) -> list[Any]:
    """``row``'s values, those at the positions of ``processed`` through their processor
    (but None, which every processor leaves None): bound values and result rows alike."""
    values = list(row)
    for i, process in processed:
        value = values[i]
        if value is not None:
            values[i] = process(value)
    return values


def _picker(names: tuple[str, ...]) -> Callable[[Params], tuple[Any, ...]]:
    """``lambda params: tuple(params[name] for name in names)``, in C where it can be."""
    if len(names) > 1:
        return cast(Callable[[Params], tuple[Any, ...]], itemgetter(*names))
    if names:
        (name,) = names
        return lambda params: (params[name],)
    return lambda _params: ()


def _run(conn: Connection, compiled: _Compiled, values: list[Any], *, many: bool = False) -> Any:
    """The statement on the connection's DBAPI cursor: once, or once per values list."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        if many:
            cursor.executemany(compiled.sql, values)
        else:
            cursor.execute(compiled.sql, values)
    except Exception as exc:
        # SQLAlchemy's own handling of a driver's error: wrapped as its exception (the
        # parameters hidden as the engine hides them), the connection invalidated when
        # it was lost.
        conn._handle_dbapi_exception(exc, compiled.sql, values, cursor, None)
    return cursor


def _run_each(conn: Connection, compiled: _Compiled, rows: list[list[Any]]) -> list[int]:
    """An INSERT once per values list on one DBAPI cursor (SQLite), as :func:`_run` runs
    it; the new rows' keys, in order."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    ids = []
    values: list[Any] = []
    try:
        for values in rows:
            cursor.execute(compiled.sql, values)
            ids.append(int(cursor.lastrowid))
    except Exception as exc:
        conn._handle_dbapi_exception(exc, compiled.sql, values, cursor, None)
    return ids


class OneOf(ColumnElement[bool]):
    """``column`` is one of the list bound as ``name`` at execution: ``IN (…)`` on SQLite
    (an expanding parameter), ``= ANY(:name)`` with one array parameter on PostgreSQL.
    There, an ``IN`` list is a different statement for every length, and each length is
    planned afresh on each connection until PostgreSQL settles on a generic plan (about
    1 ms for the account query of a batch); one array parameter is one statement,
    prepared and planned once per connection."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own declaration
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name


@compiles(OneOf)
def _one_of_in(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)


@compiles(OneOf, "postgresql")
def _one_of_any(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    array = bindparam(element.name, type_=ARRAY(element.column.type))
    return compiler.process(element.column == any_(array), **kw)
