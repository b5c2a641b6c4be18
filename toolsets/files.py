"""``FileEditToolset``: view and edit files in the sandbox's workspace, then ``submit`` (SWE work).

Every mistake a model makes is an error observation that says exactly what went wrong and what to do:
no match / several matches for ``str_replace`` (with line numbers), a path outside the workspace, a binary
file, a line number out of range. Paths are relative to the workspace; absolute paths must lie inside it,
and symlinks are resolved before the check.
"""

from __future__ import annotations

import difflib
import posixpath
from typing import Any

from ..errors import SandboxError, ToolError
from .base import ToolContext, Toolset, tool
from .python import require_sandbox

__all__ = ["FileEditToolset"]

MAX_FILE_BYTES = 4 * 1024 * 1024
STATE_KEY = "files"


class FileEditToolset(Toolset):
    """Tools ``view``, ``create_file``, ``insert``, ``str_replace`` and ``submit`` (terminal).

    Args:
        max_view_lines: most lines ``view`` shows at once (ask for a range to see more).
        submit_message: what ``submit`` answers.
    """

    def __init__(self, max_view_lines: int = 400, submit_message: str = "submitted; the episode is over") -> None:
        super().__init__()
        self.max_view_lines = max_view_lines
        self.submit_message = submit_message

    # ------------------------------------------------------------------ helpers

    async def _resolve(self, ctx: ToolContext, path: str) -> tuple[Any, str]:
        """(sandbox, absolute path inside the sandbox), or ToolError when the path leaves the workspace."""
        sb = require_sandbox(ctx)
        ws = posixpath.normpath(sb.workspace)
        if not path or not path.strip():
            raise ToolError("path is empty; give a path relative to the workspace, e.g. 'src/app.py'")
        p = path.strip()
        full = posixpath.normpath(p if p.startswith("/") else posixpath.join(ws, p))
        if not _inside(full, ws):
            raise ToolError(f"path {path!r} is outside the workspace {ws}; only files under it can be used")
        try:
            st = await sb.stat(full)
        except SandboxError as e:
            raise ToolError(f"the sandbox failed: {e}") from None
        if st.get("exists") and not _inside(posixpath.normpath(st["realpath"]), ws):
            raise ToolError(f"path {path!r} is a link to {st['realpath']}, outside the workspace {ws}")
        return sb, full

    async def _read_text(self, sb: Any, full: str, shown: str) -> str:
        try:
            data = await sb.read_file(full, max_bytes=MAX_FILE_BYTES)
        except FileNotFoundError:
            raise ToolError(f"file {shown!r} does not exist; use view on a directory to list files") from None
        except IsADirectoryError:
            raise ToolError(f"{shown!r} is a directory, not a file") from None
        except OSError as e:
            raise ToolError(f"cannot read {shown!r}: {e}") from None
        except SandboxError as e:
            raise ToolError(f"the sandbox failed: {e}") from None
        if len(data) >= MAX_FILE_BYTES:
            raise ToolError(f"file {shown!r} is larger than {MAX_FILE_BYTES} bytes; edit it with the shell instead")
        if b"\0" in data:
            raise ToolError(f"{shown!r} is a binary file; these tools edit text files only")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{shown!r} is not UTF-8 text (binary file?); these tools edit text files only") from None

    async def _write(self, sb: Any, full: str, text: str, shown: str) -> None:
        try:
            await sb.write_file(full, text)
        except SandboxError as e:
            raise ToolError(f"the sandbox failed: {e}") from None
        except OSError as e:
            raise ToolError(f"cannot write {shown!r}: {e}") from None

    @staticmethod
    def _numbered(lines: list[str], start: int) -> str:
        return "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(lines, start))

    # ------------------------------------------------------------------ tools

    @tool
    async def view(
        self, path: str, ctx: ToolContext, start_line: int | None = None, end_line: int | None = None
    ) -> str:
        """Show a file with line numbers, or list a directory (two levels deep).

        Args:
            path: file or directory, relative to the workspace ('.' for the workspace itself).
            start_line: first line to show (1-based, default 1).
            end_line: last line to show (inclusive, default: the end, at most the view limit).
        """
        sb, full = await self._resolve(ctx, path)
        st = await sb.stat(full)
        if not st.get("exists"):
            raise ToolError(f"{path!r} does not exist; use view on '.' to list the workspace")
        if st.get("is_dir"):
            entries = await sb.list_dir(full, depth=2)
            return "\n".join(entries) if entries else "(empty directory)"
        text = await self._read_text(sb, full, path)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        n = len(lines)
        s = 1 if start_line is None else start_line
        if s < 1 or (n and s > n) or (not n and s > 1):
            raise ToolError(f"start_line {s} is out of range: {path!r} has {n} lines")
        e = n if end_line is None else end_line
        if e < s:
            raise ToolError(f"end_line {e} is before start_line {s}")
        e = min(e, n, s + self.max_view_lines - 1)
        body = self._numbered(lines[s - 1 : e], s) if n else "(empty file)"
        if e < n and (end_line is None or end_line > e):
            body += f"\n[... showing lines {s}-{e} of {n}; pass start_line={e + 1} to see more]"
        return body

    @tool
    async def create_file(self, path: str, content: str, ctx: ToolContext, overwrite: bool = False) -> str:
        """Create a text file (parent directories are created).

        Args:
            path: file path relative to the workspace.
            content: the whole content of the file.
            overwrite: replace the file if it exists (otherwise that is an error).
        """
        sb, full = await self._resolve(ctx, path)
        st = await sb.stat(full)
        if st.get("exists"):
            if st.get("is_dir"):
                raise ToolError(f"{path!r} is a directory")
            if not overwrite:
                raise ToolError(f"{path!r} already exists; use str_replace to edit it, or pass overwrite=true")
        await self._write(sb, full, content, path)
        return f"{'overwrote' if st.get('exists') else 'created'} {path} ({content.count(chr(10)) + 1} lines)"

    @tool
    async def insert(self, path: str, line: int, text: str, ctx: ToolContext) -> str:
        """Insert text after a given line of a file (line 0 inserts at the top).

        Args:
            path: file path relative to the workspace.
            line: the line number after which to insert (0 = before the first line).
            text: the text to insert (one or more lines).
        """
        sb, full = await self._resolve(ctx, path)
        content = await self._read_text(sb, full, path)
        lines = content.split("\n")
        trailing = content.endswith("\n")
        if trailing:
            lines.pop()
        if line < 0 or line > len(lines):
            raise ToolError(f"line {line} is out of range: {path!r} has {len(lines)} lines (use 0..{len(lines)})")
        new_lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
        lines[line:line] = new_lines
        await self._write(sb, full, "\n".join(lines) + ("\n" if trailing or not content else ""), path)
        lo = max(1, line - 2)
        hi = min(len(lines), line + len(new_lines) + 2)
        return f"inserted {len(new_lines)} line(s) after line {line} of {path}:\n" + self._numbered(
            lines[lo - 1 : hi], lo
        )

    @tool
    async def str_replace(self, path: str, old_str: str, new_str: str, ctx: ToolContext) -> str:
        """Replace one exact occurrence of old_str in a file with new_str (whitespace matters).

        Args:
            path: file path relative to the workspace.
            old_str: the exact text to replace; it must occur exactly once (add surrounding lines to make it
                unique).
            new_str: the replacement text (may be empty to delete).
        """
        if old_str == "":
            raise ToolError("old_str is empty; give the exact text to replace (use insert to add new text)")
        sb, full = await self._resolve(ctx, path)
        content = await self._read_text(sb, full, path)
        count = content.count(old_str)
        if count == 0:
            raise ToolError(f"no match for old_str in {path!r}" + _closest_hint(content, old_str))
        if count > 1:
            starts: list[int] = []
            i = content.find(old_str)
            while i >= 0 and len(starts) < 10:
                starts.append(content.count("\n", 0, i) + 1)
                i = content.find(old_str, i + 1)
            raise ToolError(
                f"old_str occurs {count} times in {path!r} (at lines {', '.join(map(str, starts))}); "
                "include more surrounding lines so it matches exactly once"
            )
        at = content.find(old_str)
        new_content = content[:at] + new_str + content[at + len(old_str) :]
        await self._write(sb, full, new_content, path)
        first = content.count("\n", 0, at) + 1
        lines = new_content.split("\n")
        lo = max(1, first - 3)
        hi = min(len(lines), first + new_str.count("\n") + 3)
        return f"edited {path}; lines {lo}-{hi} now read:\n" + self._numbered(lines[lo - 1 : hi], lo)

    @tool(terminal=True)
    async def submit(self, ctx: ToolContext) -> str:
        """Submit your work: call this when the task is done. The episode ends and your changes are judged."""
        ctx.state.setdefault(STATE_KEY, {})["submitted"] = True
        return self.submit_message


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _closest_hint(content: str, old: str) -> str:
    """Point at the most similar line when old_str does not occur (often a whitespace difference)."""
    first = old.strip("\n").split("\n")[0].strip()
    if not first:
        return ""
    lines = content.split("\n")
    stripped = [ln.strip() for ln in lines]
    if first in stripped:
        n = stripped.index(first) + 1
        return f"; line {n} matches its first line except for indentation/whitespace: {lines[n - 1]!r}"
    best = difflib.get_close_matches(first, stripped, n=1, cutoff=0.6)
    if best:
        n = stripped.index(best[0]) + 1
        return f"; the most similar line is {n}: {lines[n - 1]!r}"
    return "; view the file to copy the exact text"
