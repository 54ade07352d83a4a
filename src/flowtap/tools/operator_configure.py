"""``flowtap-cli configure``: Junos configuration mode over one NETCONF session.

The mode is Junos's ``configure exclusive``. Entering it takes the candidate's lock
(``lock-configuration``), so no other session can change the candidate meanwhile, and the
server refuses the lock while anyone has uncommitted changes. Leaving it discards what was not
committed and says so. The server does the same on its own if the connection drops (a
session's lock and candidate changes die with it). ``configure private`` needs per-session
candidates, which the server does not have.

A ``commit confirmed N`` belongs to this session, as in RFC 6241 without ``persist``. A
``commit`` in the same session confirms it. Leaving the mode unconfirmed cancels it at once
(``cancel-commit``, the previous configuration comes back) and says so. Junos would instead
keep waiting for the rest of the N minutes, but here the server would revert as soon as the
session ended anyway, and the user should learn that now, not from a silent rollback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from flowtap.config.junos_text import JunosSyntaxError, tokens
from flowtap.tools import operator_ops as ops
from flowtap.tools.netconf_client import NetconfClient
from flowtap.tools.operator_ops import CommandFailed, UsageError
from flowtap.tools.operator_render import configuration_at, select_set

HELP = """\
set STATEMENT                 add or change a statement (Junos set syntax)
delete STATEMENT              remove a statement
show [PATH]                   the candidate configuration (| display set: as set lines)
show | compare [rollback N]   what commit would change, against the running configuration
commit [check] [confirmed [N]] [comment "TEXT"] [and-quit]
rollback [N]                  load commit N (default 0) into the candidate
run COMMAND                   an operational command (run show system commit)
exit, quit                    leave configuration mode (uncommitted changes are discarded)
"""


def words_of(line: str) -> list[str]:
    """A command's words, quotes removed; ``|`` is a word even without blanks around it."""
    try:
        return [piece for piece, _, _ in tokens(line.replace("|", " | "))]
    except JunosSyntaxError as exc:
        raise UsageError(exc.message) from None


def split_pipe(words: list[str]) -> tuple[list[str], list[str]]:
    """``show PATH | display set`` -> (PATH, [display, set]). The shell eats ``|``, so
    ``display set`` and ``--display set`` at the end mean the same."""
    if "|" in words:
        at = words.index("|")
        return words[:at], words[at + 1 :]
    if words[-2:] in (["display", "set"], ["--display", "set"]):
        return words[:-2], ["display", "set"]
    if words[-1:] == ["--display=set"]:
        return words[:-1], ["display", "set"]
    return words, []


def _number(word: str, what: str, low: int, high: int) -> int:
    if not (word.isascii() and word.isdigit()) or not low <= int(word) <= high:
        raise UsageError(f"{what} must be a number from {low} to {high}, not {word!r}")
    return int(word)


@dataclass
class CommitRequest:
    check: bool = False
    confirm_minutes: int | None = None
    comment: str | None = None
    and_quit: bool = False


def parse_commit(words: list[str]) -> CommitRequest:
    request = CommitRequest()
    at = 0
    while at < len(words):
        word = words[at]
        at += 1
        if word == "check":
            request.check = True
        elif word == "and-quit":
            request.and_quit = True
        elif word == "confirmed":
            request.confirm_minutes = 10  # Junos's default
            if at < len(words) and words[at].isdigit():
                request.confirm_minutes = _number(words[at], "commit confirmed", 1, 65535)
                at += 1
        elif word == "comment" and at < len(words):
            request.comment = words[at]
            at += 1
        else:
            raise UsageError(f"commit: syntax error at {word!r} (commit [check] [confirmed [N]] "
                             '[comment "TEXT"] [and-quit])')  # fmt: skip
    if request.check and (request.confirm_minutes is not None or request.and_quit):
        raise UsageError("commit check takes no other option")
    return request


Operational = Callable[[list[str]], Awaitable[str]]


@dataclass
class ConfigureMode:
    """One configuration-mode session; :meth:`run` takes one command line at a time."""

    nc: NetconfClient
    operational: Operational  # ``run ...``: the operational command dispatcher
    confirm_pending: bool = False
    confirmed_as: ops.Commit | None = None  # the history entry of our commit confirmed
    done: bool = False
    notes: list[str] = field(default_factory=list)  # warnings for stderr

    async def enter(self) -> None:
        await ops.lock(self.nc)

    async def run(self, line: str) -> str:
        """The output of one command ("" for none). Raises CommandFailed (the server refused)
        or UsageError (not a command of this mode)."""
        words = words_of(line)
        if not words:
            return ""
        verb = words[0]
        if verb in ("set", "delete"):
            await ops.load_set(self.nc, line.strip())
            return ""
        if verb == "show":
            return await self._show(words[1:])
        if verb == "commit":
            return await self._commit(parse_commit(words[1:]))
        if verb == "rollback":
            number = _number(words[1], "rollback", 0, 49) if len(words) > 1 else 0
            if len(words) > 2:
                raise UsageError("rollback takes one number")
            await ops.load_rollback(self.nc, number)
            return "load complete\n"
        if verb == "run" and len(words) > 1:
            return await self.operational(words[1:])
        if verb in ("exit", "quit") and words[1:] in ([], ["configuration-mode"]):
            self.done = True
            return ""
        if verb in ("help", "?"):
            return HELP
        raise UsageError(f"unknown command {verb!r} in configuration mode (help lists them)")

    async def _show(self, words: list[str]) -> str:
        path, pipe = split_pipe(words)
        if pipe[:1] == ["compare"] and not path:
            rest = pipe[1:]
            if rest and (rest[0] != "rollback" or len(rest) != 2):
                raise UsageError("show | compare [rollback N]")
            return await ops.compare(self.nc, _number(rest[1], "rollback", 0, 49) if rest else 0)
        if pipe == ["display", "set"]:
            return select_set(await ops.configuration(self.nc, "candidate", "set"), path)
        if pipe:
            raise UsageError(f"show: unknown pipe '| {' '.join(pipe)}' (compare, display set)")
        text = await ops.configuration(self.nc, "candidate", "text")
        return configuration_at(text, path, "show")

    async def _newest_commit(self) -> ops.Commit | None:
        try:
            history = await ops.commit_history(self.nc)
        except CommandFailed:  # a class with configure but without view: nothing to compare
            return None
        return history[0] if history else None

    async def _commit(self, request: CommitRequest) -> str:
        out = ""
        # the server rolls back at the timeout without telling this session: a commit then
        # confirms nothing, and the operator must know the change was undone
        confirming = self.confirm_pending and not request.check and self.confirmed_as is not None
        if confirming and await self._newest_commit() != self.confirmed_as:
            out = ("warning: the commit confirmed was already rolled back at its timeout; this "
                   "commit does not confirm it\n")  # fmt: skip
        await ops.commit(self.nc, check=request.check, confirm_minutes=request.confirm_minutes,
                         comment=request.comment)  # fmt: skip
        if request.check:
            return "configuration check succeeds\n"
        if request.confirm_minutes is not None:
            self.confirm_pending = True
            self.confirmed_as = await self._newest_commit()
            minutes = request.confirm_minutes
            out += (f"commit confirmed will be automatically rolled back in {minutes} "
                    f"minute{'s' if minutes != 1 else ''} unless confirmed\n")  # fmt: skip
        else:
            self.confirm_pending = False  # a plain commit confirms (same session)
            self.confirmed_as = None
        self.done = self.done or request.and_quit
        return out + "commit complete\n"

    async def leave(self) -> None:
        """Cancel an unconfirmed commit, discard uncommitted changes, release the lock; each
        step is reported in :attr:`notes`."""
        if self.confirm_pending:
            try:
                await ops.cancel_commit(self.nc)
                self.notes.append("commit confirmed was not confirmed: rolled back to the "
                                  "previous configuration as configuration mode ends")  # fmt: skip
            except CommandFailed as exc:  # already rolled back by its timeout
                self.notes.append(f"commit confirmed had already been rolled back ({exc})")
            self.confirm_pending = False
        if await ops.compare(self.nc):
            await ops.discard(self.nc)
            self.notes.append("uncommitted changes discarded on leaving configuration mode")
        await ops.unlock(self.nc)
