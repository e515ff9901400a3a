"""Shared machinery of the converters: errors, input reading, field access,
the count report, parquet writing and the command-line skeleton.

A converter subclasses :class:`Converter`, sets a few class attributes and
implements :meth:`Converter.convert`, which turns one input :class:`Record`
into a :class:`~data_prep.schema.Example`.  Everything else (options, the
``--on-error`` policy, ``--limit``, counting, the refusal to write an empty
file, the report) lives here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep import answers
from data_prep.schema import Example, arrow_schema, check_row, make_row
from data_prep.templates import AS_IS, BOXED, LUFFY_THINK, TEMPLATE_NAMES, uses_think_format

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
DEFAULT_LIST_SKIPPED = 20


# --------------------------------------------------------------------------- errors


class DataPrepError(Exception):
    """A data problem, located as precisely as possible.

    ``str(error)`` reads ``"<file>: row <i> (line <n>), field '<name>': <message>"``
    (row indices are 0-based, line numbers 1-based and only given for JSON
    lines input).  ``reason`` is a short category used to count skipped rows.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike | None = None,
        row: int | None = None,
        line: int | None = None,
        field: str | None = None,
        reason: str = "invalid row",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = None if file is None else str(file)
        self.row = row
        self.line = line
        self.field = field
        self.reason = reason

    @property
    def location(self) -> str:
        """``"<file>: row <i> (line <n>), field '<name>'"`` (the parts that are known)."""
        parts = []
        if self.file is not None:
            parts.append(self.file)
        where = []
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line is not None else ""))
        if self.field is not None:
            where.append(f"field '{self.field}'")
        if where:
            parts.append(", ".join(where))
        return ": ".join(parts)

    @property
    def category(self) -> str:
        """The key skipped rows are counted under, e.g. ``"missing field: answer"``."""
        return f"{self.reason}: {self.field}" if self.field else self.reason

    def __str__(self) -> str:
        location = self.location
        return f"{location}: {self.message}" if location else self.message


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RowContext:
    """Where a row comes from: file, 0-based row index, 1-based line (JSON lines only)."""

    file: str
    row: int
    line: int | None = None

    def error(self, field: str | None, message: str, reason: str = "invalid value") -> DataPrepError:
        """A :class:`DataPrepError` located at this row and ``field``."""
        return DataPrepError(message, file=self.file, row=self.row, line=self.line, field=field, reason=reason)


_MISSING = object()


class Record:
    """One input row (a dict) with typed, located field access.

    Every accessor raises :class:`DataPrepError` naming the file, row and field.
    """

    def __init__(self, data: dict[str, Any], ctx: RowContext) -> None:
        self.data = data
        self.ctx = ctx

    def error(self, field: str | None, message: str, reason: str = "invalid value") -> DataPrepError:
        """Shortcut for ``self.ctx.error``."""
        return self.ctx.error(field, message, reason)

    def has(self, field: str) -> bool:
        """True when ``field`` is present and not null."""
        return self.data.get(field) is not None

    def get(self, field: str, default: Any = None) -> Any:
        """The raw value of ``field`` or ``default`` (missing or null)."""
        value = self.data.get(field)
        return default if value is None else value

    def require(self, field: str) -> Any:
        """The raw value of ``field``; missing or null is an error."""
        value = self.data.get(field, _MISSING)
        if value is _MISSING or value is None:
            raise self.error(field, "missing field", "missing field")
        return value

    def text(self, field: str, *, allow_empty: bool = False) -> str:
        """A string field; wrong type or (unless allowed) blank is an error."""
        value = self.require(field)
        if not isinstance(value, str):
            raise self.error(field, f"expected a string, got {type(value).__name__}", "wrong type")
        if not allow_empty and not value.strip():
            raise self.error(field, "empty value", "empty value")
        return value

    def first_text(self, *fields: str) -> tuple[str, str]:
        """``(name, value)`` of the first present field among ``fields`` (a string)."""
        for field in fields:
            if self.has(field):
                return field, self.text(field)
        raise self.error(" or ".join(fields), "missing field", "missing field")

    def answer(self, field: str) -> str:
        """A ground truth: a non-empty string or a number rendered as a string."""
        return to_answer(self.require(field), self.ctx, field)

    def chat(self, field: str) -> list[dict[str, str]]:
        """A chat list of ``{role, content}`` messages (a list, or a JSON string of one)."""
        return parse_chat(self.require(field), self.ctx, field)

    def meta(self, *fields: str) -> dict[str, Any]:
        """The present fields among ``fields``, for ``extra_info["meta"]``."""
        return {field: self.data[field] for field in fields if self.data.get(field) is not None}


def to_answer(value: Any, ctx: RowContext, field: str) -> str:
    """A ground truth as a non-empty string (numbers rendered, ``27.0 -> "27"``)."""
    if value is None:
        raise ctx.error(field, "missing field", "missing field")
    try:
        return answers.answer_to_str(value)
    except ValueError as exc:
        reason = "empty value" if isinstance(value, str) else "wrong type"
        raise ctx.error(field, str(exc), reason) from None


def parse_chat(value: Any, ctx: RowContext, field: str) -> list[dict[str, str]]:
    """Validate a chat list; a JSON-encoded string of a list is accepted too.

    Each message needs a ``role`` among system/user/assistant and a string
    ``content``; anything else is an "unparsable chat list" error.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ctx.error(field, f"not a chat list (invalid JSON string: {exc.msg})", "unparsable chat list") from None
    if hasattr(value, "tolist") and not isinstance(value, (list, dict)):  # numpy arrays from pandas
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise ctx.error(field, f"expected a non-empty list of {{role, content}} messages, got {type(value).__name__}",
                        "unparsable chat list")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise ctx.error(f"{field}[{i}]", f"expected a {{role, content}} message, got {type(message).__name__}",
                            "unparsable chat list")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise ctx.error(f"{field}[{i}].role", f"unknown role {role!r} (expected system, user or assistant)", "unparsable chat list")
        if not isinstance(content, str):
            raise ctx.error(f"{field}[{i}].content", f"expected a string, got {type(content).__name__}",
                            "unparsable chat list")
        messages.append({"role": role, "content": content})
    return messages


@dataclass
class SourceRow:
    """A row as read: either ``record`` or, for an unreadable row, ``error``."""

    ctx: RowContext
    record: Record | None = None
    error: DataPrepError | None = None


#: what a JSON input may hold; named in every message about a JSON file that is neither
JSON_LAYOUTS = ("JSON lines (one object per line, .jsonl/.json/.ndjson) or a JSON array of objects "
                "(`[{...}, {...}]`, e.g. a .json file)")


def _first_char(path: Path) -> str:
    """The first non-whitespace character of a text file ('' when blank)."""
    with path.open(encoding="utf-8") as handle:
        while True:
            chunk = handle.read(4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0]


def _iter_json_array(path: Path) -> Iterator[SourceRow]:
    """Rows of a file holding one JSON array; each element is a row (located by row and starting line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataPrepError(f"not UTF-8 text: {exc.reason}", file=path) from None
    try:  # the whole file first: a broken array fails here, before any row, with the position
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataPrepError(f"starts with '[' but is not a valid JSON array: {exc.msg} (line {exc.lineno}, column "
                            f"{exc.colno}); expected {JSON_LAYOUTS}", file=path) from None
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, text.index("[") + 1).end()
    line, counted, row = 1, 0, 0
    while text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        data, pos = decoder.raw_decode(text, pos)
        ctx = RowContext(str(path), row, line)
        row += 1
        if isinstance(data, dict):
            yield SourceRow(ctx, record=Record(data, ctx))
        else:
            yield SourceRow(ctx, error=ctx.error(None, f"expected a JSON object, got {type(data).__name__}",
                                                 "invalid JSON"))
        pos = ws.match(text, pos).end()
        if text[pos] == ",":
            pos = ws.match(text, pos + 1).end()


def _iter_jsonl(path: Path) -> Iterator[SourceRow]:
    try:
        if _first_char(path) == "[":
            yield from _iter_json_array(path)
            return
    except UnicodeDecodeError as exc:
        raise DataPrepError(f"not UTF-8 text: {exc.reason}", file=path) from None
    row = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                ctx = RowContext(str(path), row, line_no)
                row += 1
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield SourceRow(ctx, error=ctx.error(None, f"invalid JSON: {exc.msg} (column {exc.colno}); "
                                                         f"expected {JSON_LAYOUTS}", "invalid JSON"))
                    continue
                if not isinstance(data, dict):
                    yield SourceRow(ctx, error=ctx.error(None, f"expected a JSON object, got {type(data).__name__}; "
                                                         f"expected {JSON_LAYOUTS}", "invalid JSON"))
                    continue
                yield SourceRow(ctx, record=Record(data, ctx))
    except UnicodeDecodeError as exc:
        raise DataPrepError(f"not UTF-8 text near line {row + 1}: {exc.reason}", file=path) from None


def _iter_parquet(path: Path) -> Iterator[SourceRow]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataPrepError(f"cannot read parquet: {exc}", file=path) from None
    row = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for data in batch.to_pylist():
            ctx = RowContext(str(path), row)
            row += 1
            yield SourceRow(ctx, record=Record(data, ctx))


def iter_rows(path: str | os.PathLike) -> Iterator[SourceRow]:
    """Rows of a JSON lines (``.jsonl``/``.json``/``.ndjson``) or parquet file.

    A JSON file whose first non-blank character is ``[`` is read as one JSON array of objects (the layout of
    many published evaluation files, e.g. HPT's ``data/*/test.json``); a broken array is a file error that
    names both layouts.

    Blank lines are ignored; an invalid JSON line becomes a row with an
    ``error``.  An unreadable file raises :class:`DataPrepError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataPrepError("no such file", file=path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        return _iter_jsonl(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _iter_parquet(path)
    raise DataPrepError(
        f"unsupported input format {path.suffix!r} (expected {', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)})", file=path
    )


def read_parquet_rows(path: str | os.PathLike) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The table and its rows as plain Python objects (for the validator)."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataPrepError(f"cannot read parquet: {exc}", file=path) from None
    return table, table.to_pylist()


# --------------------------------------------------------------------------- writing


def _temporary_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Write ``table`` to ``path`` atomically (temporary file + rename), creating folders."""
    path = Path(path)
    tmp = _temporary_path(path)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_rows(rows: list[dict[str, Any]], path: str | os.PathLike, *, training: bool) -> None:
    """Write output rows with the fixed :func:`~data_prep.schema.arrow_schema`."""
    write_table(pa.Table.from_pylist(rows, schema=arrow_schema(training)), path)


class ParquetSink:
    """Streams output rows to a temporary parquet file in batches.

    :meth:`commit` renames it to the destination; :meth:`discard` (also called
    when :meth:`commit` is never reached) removes it, so a failed or empty
    conversion leaves no file behind.
    """

    BATCH_ROWS = 1024

    def __init__(self, path: str | os.PathLike, *, training: bool) -> None:
        self.path = Path(path)
        self.schema = arrow_schema(training)
        self.tmp = _temporary_path(self.path)
        self.writer = pq.ParquetWriter(self.tmp, self.schema)
        self.pending: list[dict[str, Any]] = []
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        """Queue a row; full batches are written."""
        self.pending.append(row)
        self.count += 1
        if len(self.pending) >= self.BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_pylist(self.pending, schema=self.schema))
            self.pending = []

    def commit(self) -> None:
        """Write the rest and move the file into place."""
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """Close and delete the temporary file (no-op after :meth:`commit`)."""
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- report


class Report:
    """Counts of a conversion: rows read, written, skipped by reason, plus notes."""

    def __init__(self, name: str, source: str, output: str, *, list_skipped: int = DEFAULT_LIST_SKIPPED) -> None:
        self.name = name
        self.source = source
        self.output = output
        self.list_skipped = list_skipped
        self.read = 0
        self.written = 0
        self.skipped: Counter[str] = Counter()
        self.skipped_examples: list[str] = []
        self.data_sources: Counter[str] = Counter()
        self.templates: Counter[str] = Counter()
        self.notes: list[str] = []

    @property
    def skipped_total(self) -> int:
        """Number of skipped rows."""
        return sum(self.skipped.values())

    def skip(self, error: DataPrepError) -> None:
        """Count a skipped row under its category and remember the first few."""
        self.skipped[error.category] += 1
        if len(self.skipped_examples) < self.list_skipped:
            self.skipped_examples.append(str(error))

    def add(self, row: dict[str, Any]) -> None:
        """Count a written row."""
        self.written += 1
        self.data_sources[row["data_source"]] += 1
        self.templates[row["extra_info"]["template"]] += 1

    def note(self, text: str) -> None:
        """Add a remark printed at the end of the report."""
        self.notes.append(text)

    def render(self) -> str:
        """The human-readable report."""
        lines = [f"{self.name}: {self.source} -> {self.output}"]
        lines.append(f"  read:    {self.read} rows")
        lines.append(f"  written: {self.written} rows")
        lines.append(f"  skipped: {self.skipped_total} rows")
        for category, count in self.skipped.most_common():
            lines.append(f"    {count:6d}  {category}")
        if self.skipped_examples:
            shown = len(self.skipped_examples)
            lines.append(f"  skipped rows (first {shown} of {self.skipped_total}):")
            lines.extend(f"    {example}" for example in self.skipped_examples)
        if self.data_sources:
            lines.append("  data_source: " + ", ".join(f"{k} {v}" for k, v in sorted(self.data_sources.items())))
        if self.templates:
            lines.append("  template:    " + ", ".join(f"{k} {v}" for k, v in sorted(self.templates.items())))
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------- conversion loop


T = TypeVar("T")


def convert_sources(
    sources: Iterable[SourceRow],
    convert: Callable[[Record], T],
    report: Report,
    *,
    limit: int | None,
    on_error: str,
) -> Iterator[tuple[SourceRow, T]]:
    """``(source, convert(source.record))`` for each input row that converts, applying the shared policy.

    Stops after ``limit`` rows (``None``: all), counts every row read in ``report.read`` and, for an
    unreadable row or a :class:`DataPrepError` raised by ``convert``, re-raises it (``on_error="fail"``)
    or counts it with :meth:`Report.skip` and moves on (``"skip"``).  Counting written rows is the
    caller's: one input row may give any number of output rows.
    """
    for source in sources:
        if limit is not None and report.read >= limit:
            break
        report.read += 1
        try:
            if source.error is not None:
                raise source.error
            result = convert(source.record)
        except DataPrepError as error:
            if on_error == "fail":
                raise
            report.skip(error)
            continue
        yield source, result


# --------------------------------------------------------------------------- CLI skeleton


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


#: argparse types: an integer >= 1, an integer >= 0
positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


COMMON_EPILOG = """\
Output: a verl parquet file with columns data_source, prompt, ability,
reward_model {ground_truth, style: "rule"}, extra_info {index, split, template,
source_row, meta}{target}.  See data_prep/README.md.

Exit status: 0 on success, 1 on a data error (a bad row with --on-error fail,
an unreadable input, or no row left to write: an empty file is never written),
2 on a usage error.
"""


class Converter:
    """Base class of the converter CLIs.

    Subclasses set the class attributes and implement :meth:`convert`; they may
    add options in :meth:`add_arguments`, check them in :meth:`prepare` and add
    report notes in :meth:`finish`.
    """

    #: module name, e.g. "gsm8k" (the CLI is ``python -m data_prep.<name>``)
    name: str = ""
    description: str = ""
    #: converter-specific help text printed after the options
    epilog: str = ""
    #: training converters write a ``target`` demonstration column
    training: bool = True
    #: accepted ``--template`` values and the default
    template_choices: tuple[str, ...] = TEMPLATE_NAMES
    default_template: str = BOXED
    #: split recorded when neither ``--split`` nor the row gives one
    default_split: str = "train"

    def __init__(self) -> None:
        self.options: argparse.Namespace | None = None
        self.template: str = self.default_template
        self.think_demos_without_end = 0

    # -- hooks for subclasses

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add converter-specific options."""

    def prepare(self, options: argparse.Namespace) -> None:
        """Check option combinations (raise ``DataPrepError``) and set up state."""

    def convert(self, record: Record) -> Example:
        """Turn one input row into an :class:`Example` (raise ``DataPrepError`` on bad data)."""
        raise NotImplementedError

    def finish(self, report: Report) -> None:
        """Add notes to the report after all rows were converted."""

    # -- machinery

    def build_parser(self) -> argparse.ArgumentParser:
        """The argument parser (``--help`` documents every option)."""
        target = ", target [{content, role: assistant}] (the demonstration)" if self.training else ""
        parser = argparse.ArgumentParser(
            prog=f"python -m data_prep.{self.name}",
            description=textwrap.fill(self.description, width=79),
            epilog=(self.epilog.rstrip() + "\n\n" if self.epilog else "") + COMMON_EPILOG.replace("{target}", target),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--input", required=True, metavar="PATH",
                            help="input file: .jsonl/.json/.ndjson JSON lines or a JSON array of objects, or .parquet")
        parser.add_argument("--output", required=True, metavar="PATH",
                            help="output parquet file (folders are created; an existing file is replaced)")
        parser.add_argument(
            "--template",
            choices=self.template_choices,
            default=None,
            help=f"prompt template recorded in extra_info.template (default: {self.default_template}); "
            "luffy_think = LUFFY's reasoning system prompt + the problem (reward think format on), "
            "boxed = the problem + 'Please reason step by step, and put your final answer within \\boxed{}.'"
            + (", as_is = keep the input's prompt unchanged" if AS_IS in self.template_choices else ""),
        )
        parser.add_argument(
            "--split",
            choices=("train", "test"),
            default=None,
            help=f"value of extra_info.split (default: the row's own split if it has one, else {self.default_split})",
        )
        parser.add_argument(
            "--on-error",
            choices=("fail", "skip"),
            default="fail",
            help="bad input row: fail = stop with an error naming file, row and field (default); "
            "skip = leave the row out, count it by reason and list it in the report",
        )
        parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                            help="read only the first N input rows (default: all)")
        parser.add_argument("--list-skipped", type=non_negative_int, default=DEFAULT_LIST_SKIPPED, metavar="N",
                            help=f"how many skipped rows the report lists (default: {DEFAULT_LIST_SKIPPED})")
        self.add_arguments(parser)
        return parser

    def _resolve(self, record: Record, example: Example) -> dict[str, Any]:
        options = self.options
        split = options.split or example.split or self.default_split
        template = example.template or self.template
        index = example.index if example.index is not None else record.ctx.row
        row = make_row(example, index=index, split=split, template=template, source_row=record.ctx.row)
        problems = check_row(row, training=self.training)
        if problems:  # a converter bug or an input the converter did not catch
            first = problems[0]
            raise record.error(first.field, first.message, first.reason)
        return row

    def _check_think(self, row: dict[str, Any]) -> None:
        """Count luffy_think demonstrations without ``</think>`` (they cannot pass the think-format rule)."""
        if self.training and uses_think_format(row["extra_info"]["template"]):
            if "</think>" not in row["target"][0]["content"]:
                self.think_demos_without_end += 1

    def run(self, argv: list[str] | None = None) -> Report:
        """Parse ``argv``, convert and write; returns the report.

        Raises :class:`DataPrepError` on a bad row (``--on-error fail``), an
        unreadable input or when no row would be written.
        """
        options = self.build_parser().parse_args(argv)
        self.options = options
        self.template = options.template or self.default_template
        self.think_demos_without_end = 0
        self.prepare(options)
        if Path(options.input).resolve() == Path(options.output).resolve():
            raise DataPrepError("the output must not overwrite the input", file=options.input)
        report = Report(f"data_prep.{self.name}", options.input, options.output, list_skipped=options.list_skipped)
        sources = iter_rows(options.input)  # raises for a missing or unreadable file before any output
        sink = ParquetSink(options.output, training=self.training)
        try:
            rows = convert_sources(sources, lambda record: self._resolve(record, self.convert(record)), report,
                                   limit=options.limit, on_error=options.on_error)
            for _, row in rows:
                sink.add(row)
                report.add(row)
                self._check_think(row)
            self.finish(report)
            if report.written == 0:
                print(report.render(), file=sys.stderr)
                raise DataPrepError(
                    f"no rows to write (read {report.read}, skipped {report.skipped_total}); "
                    "refusing to write an empty file",
                    file=options.output,
                )
            if self.think_demos_without_end:
                report.note(
                    f"{self.think_demos_without_end} of {report.templates[LUFFY_THINK]} luffy_think demonstrations "
                    "contain no '</think>': they score 0 under the think-format reward (use --template boxed for "
                    "plain worked solutions)"
                )
            sink.commit()
        finally:
            sink.discard()
        return report

    def main(self, argv: list[str] | None = None) -> int:
        """CLI entry point: run, print the report, return the exit status."""
        try:
            report = self.run(argv)
        except DataPrepError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(report.render())
        return 0

