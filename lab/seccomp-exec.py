#!/usr/bin/python3
"""Run a command under an OCI seccomp profile, applied with libseccomp.

    /usr/bin/python3 lab/seccomp-exec.py PROFILE.json -- COMMAND [ARG...]

Reads the profile (the `linux.seccomp` object of the OCI runtime spec, as
`tollgate seccomp generate` writes it), builds a libseccomp filter from it,
loads it into this process (no_new_privs is set, as libseccomp does by
default) and execs COMMAND, which inherits the filter. What runc does, without
a container: the lab and the tests run a workload under its generated
profile with it.

Needs Debian's python3-seccomp, a module of Debian's own Python
(/usr/bin/python3; another python3 on PATH, e.g. pyenv's, lacks it);
scripts/bootstrap installs it.

As runc does: a syscall name libseccomp does not know is skipped with a
warning on stderr (its rule cannot be added; the syscall then gets the
default action), a rule whose action is the default action is skipped, and
the native architecture is always in the filter besides the listed ones.
Conditions on arguments are supported (all of a rule's conditions must
hold); notify actions and profile flags are not.

A profile that allows everything ({"defaultAction": "SCMP_ACT_ALLOW",
"syscalls": []}) runs the command exactly as under a real profile (the same
filter setup, load and exec), so learning what a workload does includes the
applier's own syscalls after the load.
"""
import json
import os
import sys

try:
    import seccomp
except ImportError:
    sys.stderr.write(
        "seccomp-exec: the libseccomp Python module is missing: apt-get install python3-seccomp "
        "and run this with Debian's /usr/bin/python3 (this is %s)\n" % sys.executable
    )
    sys.exit(127)

EPERM = 1

ARCHITECTURES = {
    "SCMP_ARCH_X86": seccomp.Arch.X86,
    "SCMP_ARCH_X86_64": seccomp.Arch.X86_64,
    "SCMP_ARCH_X32": seccomp.Arch.X32,
    "SCMP_ARCH_ARM": seccomp.Arch.ARM,
    "SCMP_ARCH_AARCH64": seccomp.Arch.AARCH64,
    "SCMP_ARCH_MIPS": seccomp.Arch.MIPS,
    "SCMP_ARCH_MIPS64": seccomp.Arch.MIPS64,
    "SCMP_ARCH_MIPS64N32": seccomp.Arch.MIPS64N32,
    "SCMP_ARCH_MIPSEL": seccomp.Arch.MIPSEL,
    "SCMP_ARCH_MIPSEL64": seccomp.Arch.MIPSEL64,
    "SCMP_ARCH_MIPSEL64N32": seccomp.Arch.MIPSEL64N32,
    "SCMP_ARCH_PPC": seccomp.Arch.PPC,
    "SCMP_ARCH_PPC64": seccomp.Arch.PPC64,
    "SCMP_ARCH_PPC64LE": seccomp.Arch.PPC64LE,
    "SCMP_ARCH_S390": seccomp.Arch.S390,
    "SCMP_ARCH_S390X": seccomp.Arch.S390X,
    "SCMP_ARCH_PARISC": seccomp.Arch.PARISC,
    "SCMP_ARCH_PARISC64": seccomp.Arch.PARISC64,
    "SCMP_ARCH_RISCV64": seccomp.Arch.RISCV64,
}

OPERATORS = {
    "SCMP_CMP_NE": seccomp.NE,
    "SCMP_CMP_LT": seccomp.LT,
    "SCMP_CMP_LE": seccomp.LE,
    "SCMP_CMP_EQ": seccomp.EQ,
    "SCMP_CMP_GE": seccomp.GE,
    "SCMP_CMP_GT": seccomp.GT,
    "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ,
}

# libseccomp's "no such syscall" (__NR_SCMP_ERROR).
NO_SUCH_SYSCALL = -1


def warn(msg):
    sys.stderr.write("seccomp-exec: %s\n" % msg)


def fail(msg):
    warn(msg)
    sys.exit(2)


def action(name, errno_ret):
    """The libseccomp action of an OCI action name; errno_ret for SCMP_ACT_ERRNO (EPERM when None)."""
    errno_ret = EPERM if errno_ret is None else errno_ret
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(errno_ret)
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    fail("unsupported action %r" % name)


def conditions(args):
    out, indexes = [], set()
    for a in args or []:
        if a["op"] not in OPERATORS:
            fail("unsupported argument operator %r" % a["op"])
        if a["index"] in indexes:
            fail("two conditions on argument %d in one rule are not supported" % a["index"])
        indexes.add(a["index"])
        out.append(seccomp.Arg(a["index"], OPERATORS[a["op"]], a["value"], a.get("valueTwo", 0)))
    return out


def build(profile):
    default = action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    f = seccomp.SyscallFilter(defaction=default)
    for arch in profile.get("architectures") or []:
        if arch not in ARCHITECTURES:
            fail("unknown architecture %r" % arch)
        if not f.exist_arch(ARCHITECTURES[arch]):
            f.add_arch(ARCHITECTURES[arch])
    if profile.get("flags"):
        fail("profile flags are not supported: %r" % profile["flags"])
    for rule in profile.get("syscalls") or []:
        act = action(rule["action"], rule.get("errnoRet"))
        if act == default:
            continue  # what the default does anyway (libseccomp refuses such a rule)
        args = conditions(rule.get("args"))
        for name in rule["names"]:
            if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == NO_SUCH_SYSCALL:
                warn("libseccomp does not know syscall %r: its rule is skipped" % name)
                continue
            f.add_rule(act, name, *args)
    return f


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: %s PROFILE.json -- COMMAND [ARG...]\n" % os.path.basename(sys.argv[0]))
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        profile = json.load(fh)
    command = argv[2:]
    f = build(profile)
    f.load()
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
