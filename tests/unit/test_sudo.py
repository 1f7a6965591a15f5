"""When the sudo password is typed (`sudo.SudoPrompt`), and that it shows up nowhere.

The watcher is driven as Invoke drives it: one reader thread per stream (stdout, stderr),
each handing it its stream's whole text so far. Each row is what arrives, chunk by chunk, and
what the watcher must do then: type the password, stay silent, or report sudo's refusal.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from invoke.exceptions import ResponseNotAccepted

from loopctl import settings as settings_module
from loopctl.runner import Scrubbed
from loopctl.ssh import Nas
from loopctl.sudo import SHOWN_PROMPT, SUDO_REFUSED, SudoPrompt, new_prompt

PASSWORD = "hunter2 'x'"
ANSWER, NOTHING, REFUSED = "the password", "nothing", "refused"


class Reader:
    """Both streams of one command, each read on its own thread, as Invoke reads them."""

    def __init__(self, watcher: SudoPrompt):
        self.watcher = watcher
        self.threads = {"out": ThreadPoolExecutor(1), "err": ThreadPoolExecutor(1)}
        self.text = {"out": "", "err": ""}

    def receive(self, stream: str, chunk: str) -> str:
        self.text[stream] += chunk
        try:
            typed = self.threads[stream].submit(self.watcher.submit, self.text[stream]).result()
        except ResponseNotAccepted:
            return REFUSED
        if not typed:
            return NOTHING
        assert typed == [PASSWORD + "\n"]
        return ANSWER

    def close(self) -> None:
        for thread in self.threads.values():
            thread.shutdown()


# Each chunk is formatted with: prompt (this command's), head/rest (the prompt cut in two),
# other (another command's prompt), shown (what --dry prints), refused (sudo's refusal),
# as_long (output as long as the prompt).
CASES = {
    "the prompt alone is answered": [
        ("err", "{prompt}", ANSWER)],
    "answered once: the same text again is not answered again": [
        ("err", "{prompt}", ANSWER), ("err", "", NOTHING)],
    "answered once: the prompt once more after the answer is not answered": [
        ("err", "{prompt}", ANSWER), ("err", "\n{prompt}", NOTHING)],
    "sudo's own lines before its prompt (a lecture) are waited out": [
        ("err", "We trust you have received the usual lecture.\n\n", NOTHING), ("err", "{prompt}", ANSWER)],
    "the prompt split across chunks is answered when it is whole": [
        ("err", "{head}", NOTHING), ("err", "{rest}", ANSWER)],
    "the prompt split in three, after a lecture line": [
        ("err", "lecture\n[", NOTHING), ("err", "{head_after_bracket}", NOTHING), ("err", "{rest}", ANSWER)],
    "on a pty (one stream: stdout) the prompt is answered there": [
        ("out", "{prompt}", ANSWER)],
    "output on the other stream first: the command runs, the prompt is its text": [
        ("out", "starting\n", NOTHING), ("err", "{prompt}", NOTHING)],
    "output on the other stream first, even the start of the prompt itself": [
        ("out", "[", NOTHING), ("err", "{head}", NOTHING), ("err", "{rest}", NOTHING)],
    "output on the prompt's own stream that is no prompt: never answered after": [
        ("err", "Error: ", NOTHING), ("err", "\n{prompt}", NOTHING)],
    "the prompt with anything after it on its line is not sudo waiting": [
        ("err", "{prompt} ", NOTHING)],
    "the prompt twice before any answer is not sudo's one prompt": [
        ("err", "{prompt}\n{prompt}", NOTHING)],
    "another command's prompt is not answered, nor this one after it": [
        ("err", "{other}", NOTHING), ("err", "\n{prompt}", NOTHING)],
    "the fixed prompt of old is not answered": [
        ("err", "[loopctl] sudo password:", NOTHING), ("err", "\n{prompt}", NOTHING)],
    "the placeholder --dry prints is not answered": [
        ("err", "{shown}", NOTHING), ("err", "\n{prompt}", NOTHING)],
    "sudo's default prompt is not answered": [
        ("err", "[sudo] password for ops: ", NOTHING), ("err", "\n{prompt}", NOTHING)],
    "the start of the prompt, then something else, is not answered": [
        ("err", "{head}", NOTHING), ("err", "x", NOTHING), ("err", "\n{prompt}", NOTHING)],
    "a wrong password: sudo says so and prompts again": [
        ("err", "{prompt}", ANSWER), ("err", "\n{refused}\n{prompt}", REFUSED)],
    "a wrong password on a pty (CR LF)": [
        ("out", "{prompt}", ANSWER), ("out", "\r\n{refused}\r\n", REFUSED)],
    "a wrong password, the refusal split across chunks": [
        ("err", "{prompt}", ANSWER), ("err", "\nSorry, t", NOTHING), ("err", "ry again.\n", REFUSED)],
    "accepted: the command's own text saying sorry later is no refusal": [
        ("err", "{prompt}", ANSWER), ("err", "\nstarted\n", NOTHING), ("err", "{refused}\n", NOTHING),
        ("out", "{refused}\n", NOTHING)],
    "accepted: the command's stdout is not read as sudo's reply, however long": [
        ("err", "{prompt}", ANSWER), ("out", "{as_long}{refused}\n", NOTHING)],
}


@pytest.mark.parametrize("events", CASES.values(), ids=CASES.keys())
def test_the_watcher_types_the_password_only_into_sudos_one_prompt(events):
    prompt = new_prompt()
    cut = len("[loopctl ") + 5  # inside the random part
    fields = {"prompt": prompt, "head": prompt[:cut], "rest": prompt[cut:], "head_after_bracket": prompt[1:cut],
              "other": new_prompt(), "shown": SHOWN_PROMPT, "refused": SUDO_REFUSED, "as_long": "." * len(prompt)}
    reader = Reader(SudoPrompt(prompt, PASSWORD))
    try:
        done = [reader.receive(stream, chunk.format(**fields)) for stream, chunk, _ in events]
    finally:
        reader.close()
    assert done == [expected for _, _, expected in events]


@pytest.fixture
def with_password():
    return settings_module.load({"LOOP_ENV_FILE": "/dev/null", "NAS_HOST": "nas", "NAS_USER": "ops",
                                 "NAS_SUDO_PASSWORD": PASSWORD})


def test_the_password_and_the_prompt_are_dropped_from_output_even_across_writes(with_password):
    """What a command says back (streamed, or returned whole) goes through `Scrubbed`."""
    prompt = new_prompt()
    sink = io.StringIO()
    out = Scrubbed(sink, ["s3cret", *with_password.secrets()], prompt)
    out.write(prompt + "line one s3")
    out.write("cret\nechoed hunter2")
    out.write(" 'x' back\nlast")
    out.flush()
    assert sink.getvalue() == "line one <redacted>\nechoed <redacted> back\nlast"
    assert out.scrub(f"{prompt}\ntyped {PASSWORD}\n") == "\ntyped <redacted>\n"


def test_the_sudo_line_printed_under_dry_holds_no_password(with_password):
    printed = io.StringIO()
    nas = Nas(with_password, dry=True, out=printed)
    nas.change(["docker", "restart", "loop-api-blue"])  # printed, not run: nothing connects
    assert not nas.is_open
    assert printed.getvalue() == (f"[ops@nas:22] sudo --stdin '--prompt={SHOWN_PROMPT}' "
                                 "-- docker restart loop-api-blue\n")
