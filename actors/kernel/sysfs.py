"""The fadump sysfs files as a profile's kernel creates them, and how writes are parsed.

2018 (profiles rfc-v6 and classic): `setup_fadump()` returns early when fadump is not
enabled, so `/sys/kernel/fadump_enabled` and `fadump_registered` exist only with
fadump enabled; `fadump_release_mem` is created at boot only when a dump is active and
is never removed. `/sys/kernel/fadump/*` arrived in 2019 (ground truth §9): under the
2018 profiles that directory does not exist. A profile that has it (the upstream
profile) lists it in `PATHS`.

What a shell sees for a file that does not exist: `cat` gets ENOENT; `echo >` opens
with O_CREAT, which sysfs refuses with EACCES when the directory exists and which fails
with ENOENT when the directory itself is missing.
"""
from __future__ import annotations

#: profile -> sysfs path -> the file it is (registered, enabled, release_mem)
PATHS: dict[str, dict[str, str]] = {
    "rfc-v6": {"/sys/kernel/fadump_registered": "registered",
               "/sys/kernel/fadump_enabled": "enabled",
               "/sys/kernel/fadump_release_mem": "release_mem"},
}
PATHS["classic"] = dict(PATHS["rfc-v6"])

EPERM, ENOENT, EINVAL, ERANGE = 1, 2, 22, 34
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1


def file_of(profile: str, path: str) -> str | None:
    """The file a path names in this profile's kernel, or None if the kernel has no such path."""
    return PATHS.get(profile, PATHS["rfc-v6"]).get(path)


def exists(profile: str, path: str, *, enabled: bool, release_mem_created: bool) -> bool:
    f = file_of(profile, path)
    if f is None:
        return False
    if f == "release_mem":
        return release_mem_created
    return enabled


def missing_write_error(path: str) -> str:
    """bash's message for `echo X > PATH` when PATH does not exist in sysfs."""
    parent = path.rsplit("/", 1)[0]
    why = "Permission denied" if parent == "/sys/kernel" else "No such file or directory"
    return f"bash: {path}: {why}\n"


def missing_read_error(path: str) -> str:
    return f"cat: {path}: No such file or directory\n"


def kstrtoint(buf: str, base: int = 0) -> tuple[int, int]:
    """lib/kstrtox.c kstrtoint(): (0, value) or (-errno, 0).

    One optional leading '+' or '-', base 0 picks 16 for "0x" followed by a hex digit,
    8 for a leading "0", else 10; digits of that base only; then at most one '\\n' and
    nothing else. No other whitespace, no "0b", no '_'.
    """
    s = buf
    neg = False
    if s.startswith("-"):
        neg, s = True, s[1:]
    elif s.startswith("+"):
        s = s[1:]
    if base == 0:
        if s[:1] == "0":
            base = 16 if s[1:2].lower() == "x" and s[2:3] and s[2] in "0123456789abcdefABCDEF" else 8
        else:
            base = 10
    if base == 16 and s[:2].lower() == "0x":
        s = s[2:]
    digits = "0123456789abcdef"[:base]
    n = 0
    while n < len(s) and s[n].lower() in digits:
        n += 1
    if n == 0:
        return -EINVAL, 0
    value = int(s[:n], base)
    rest = s[n:]
    if rest.startswith("\n"):
        rest = rest[1:]
    if rest:
        return -EINVAL, 0
    if neg:
        value = -value
    if not INT_MIN <= value <= INT_MAX:
        return -ERANGE, 0
    return 0, value
