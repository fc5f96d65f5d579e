//! One seccomp BPF program for a compiled profile: the architecture check, then a balanced
//! binary search over system call numbers (about log2 of the number of ranges of calls with
//! the same answer: 7 or 8 comparisons for Docker's default profile instead of a walk down
//! hundreds of checks), whose leaves return an answer or run the few argument checks of one
//! call.
//!
//! The search looks at the call number only, never at an argument, so the kernel's
//! per-filter cache (5.11 and later) sees every unconditionally allowed call as such, and
//! its emulation of the filter over every call number at install time walks a dozen
//! instructions a call rather than the whole program.
//!
//! The program is emitted back to front: every jump goes forward to code already emitted,
//! so offsets are known when a jump is written; a target beyond a conditional jump's 8-bit
//! reach is reached through a `ja` (32-bit offset) placed next to it.

use super::{Cmp, Cond};
use std::collections::BTreeMap;

const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const RET: u16 = 0x06; // BPF_RET | BPF_K

const NR: u32 = 0; // offsets in struct seccomp_data
const ARCH: u32 = 4;
const ARGS: u32 = 16;

/// The kernel's limit on a program's length (BPF_MAXINSNS).
pub(super) const MAX_LEN: usize = 4096;

/// What a filter answers for one call number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Call {
    /// Always this.
    Ret(u32),
    /// The first answer whose condition groups (any of them, each all of its conditions)
    /// hold, else `fallback`.
    Checks { checks: Vec<(u32, Vec<Vec<Cond>>)>, fallback: u32 },
}

#[derive(Clone, Copy)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// Where control goes: an instruction already emitted (its index counted from the end of
/// the program), or a `ret` of a value, emitted wherever it is in reach.
#[derive(Clone, Copy)]
enum To {
    At(usize),
    Ret(u32),
}

/// The program, from its last instruction to its first.
#[derive(Default)]
struct Asm {
    rev: Vec<Insn>,
    rets: BTreeMap<u32, usize>,
}

impl Asm {
    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> usize {
        self.rev.push(Insn { code, jt, jf, k });
        self.rev.len() - 1
    }

    fn ret(&mut self, k: u32) -> usize {
        let at = self.push(RET, 0, 0, k);
        self.rets.insert(k, at);
        at
    }

    /// `to` as an instruction a conditional jump emitted after at most two more
    /// instructions can reach (offset <= 255).
    fn near(&mut self, to: To) -> usize {
        let here = self.rev.len();
        match to {
            To::At(at) if here - at <= 254 => at,
            To::At(at) => self.push(JA, 0, 0, (here - at - 1) as u32),
            To::Ret(k) => match self.rets.get(&k) {
                Some(&at) if here - at <= 254 => at,
                _ => self.ret(k),
            },
        }
    }

    /// A conditional jump: `jt` when `A <op> k`, else `jf`.
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) -> To {
        let t = self.near(jt);
        let f = self.near(jf);
        let at = self.rev.len();
        let off = |to: usize| u8::try_from(at - to - 1).expect("jump in reach by construction");
        To::At(self.push(code, off(t), off(f), k))
    }

    /// A statement that falls through to `next`.
    fn stmt(&mut self, code: u16, k: u32, next: To) -> To {
        let here = self.rev.len();
        match next {
            To::At(at) if at + 1 == here => {}
            To::At(at) => {
                self.push(JA, 0, 0, (here - at - 1) as u32);
            }
            To::Ret(k) => {
                self.ret(k);
            }
        }
        To::At(self.push(code, 0, 0, k))
    }

    /// Code checking `c`: `pass` when it holds, else `fail`.
    fn cond(&mut self, c: &Cond, pass: To, fail: To) -> To {
        let lo = ARGS + 8 * c.index as u32;
        let hi = lo + 4;
        let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
        match c.cmp {
            Cmp::Eq => {
                let l = self.jump(JEQ, vlo, pass, fail);
                let l = self.stmt(LD_ABS, lo, l);
                let h = self.jump(JEQ, vhi, l, fail);
                self.stmt(LD_ABS, hi, h)
            }
            Cmp::Ne => {
                let l = self.jump(JEQ, vlo, fail, pass);
                let l = self.stmt(LD_ABS, lo, l);
                let h = self.jump(JEQ, vhi, l, pass);
                self.stmt(LD_ABS, hi, h)
            }
            Cmp::Gt | Cmp::Ge => {
                let l = self.jump(if c.cmp == Cmp::Gt { JGT } else { JGE }, vlo, pass, fail);
                let l = self.stmt(LD_ABS, lo, l);
                let h = self.jump(JEQ, vhi, l, fail);
                let h = self.jump(JGT, vhi, pass, h);
                self.stmt(LD_ABS, hi, h)
            }
            Cmp::Lt | Cmp::Le => {
                // a < v is !(a >= v); a <= v is !(a > v).
                let l = self.jump(if c.cmp == Cmp::Lt { JGE } else { JGT }, vlo, fail, pass);
                let l = self.stmt(LD_ABS, lo, l);
                let h = self.jump(JEQ, vhi, l, pass);
                let h = self.jump(JGT, vhi, fail, h);
                self.stmt(LD_ABS, hi, h)
            }
            Cmp::MaskedEq(mask) => {
                let v = c.value & mask;
                let (mhi, mlo) = ((mask >> 32) as u32, mask as u32);
                let mut next = pass;
                // A half the mask clears always compares equal.
                if mlo != 0 {
                    let l = self.jump(JEQ, v as u32, next, fail);
                    let l = self.stmt(AND_K, mlo, l);
                    next = self.stmt(LD_ABS, lo, l);
                }
                if mhi != 0 {
                    let h = self.jump(JEQ, (v >> 32) as u32, next, fail);
                    let h = self.stmt(AND_K, mhi, h);
                    next = self.stmt(LD_ABS, hi, h);
                }
                next
            }
        }
    }

    /// The argument checks of one call.
    fn checks(&mut self, checks: &[(u32, Vec<Vec<Cond>>)], fallback: u32) -> To {
        let mut next = To::Ret(fallback);
        for (ret, groups) in checks.iter().rev() {
            for group in groups.iter().rev() {
                let fail = next;
                let mut pass = To::Ret(*ret);
                for c in group.iter().rev() {
                    pass = self.cond(c, pass, fail);
                }
                next = pass;
            }
        }
        next
    }

    /// The search over `ranges` (each `(first number, answer)`, up to the next one's first).
    fn tree(&mut self, ranges: &[(u32, &Call)]) -> To {
        if let [(_, call)] = ranges {
            return match call {
                Call::Ret(k) => To::Ret(*k),
                Call::Checks { checks, fallback } => self.checks(checks, *fallback),
            };
        }
        let mid = ranges.len() / 2;
        let above = self.tree(&ranges[mid..]);
        let below = self.tree(&ranges[..mid]);
        self.jump(JGE, ranges[mid].0, above, below)
    }
}

/// The program answering `calls` by number (`default` for any other number) for the
/// architecture `audit_arch`, and KILL_PROCESS for a call made in another one (an i386
/// call on x86_64), one instruction per `u64` (code | jt << 16 | jf << 24 | k << 32).
pub(super) fn program(calls: &BTreeMap<u32, Call>, default: u32, audit_arch: u32) -> Vec<u64> {
    let default = Call::Ret(default);
    let mut ranges: Vec<(u32, &Call)> = Vec::new();
    let mut next: Option<u32> = Some(0);
    for (&nr, call) in calls {
        let Some(from) = next else { break };
        if nr > from {
            extend(&mut ranges, from, &default);
        }
        extend(&mut ranges, nr, call);
        next = nr.checked_add(1);
    }
    if let Some(from) = next {
        extend(&mut ranges, from, &default);
    }
    let mut asm = Asm::default();
    let root = asm.tree(&ranges);
    let at = asm.stmt(LD_ABS, NR, root);
    let at = asm.jump(JEQ, audit_arch, at, To::Ret(libc::SECCOMP_RET_KILL_PROCESS));
    asm.stmt(LD_ABS, ARCH, at);
    asm.rev
        .iter()
        .rev()
        .map(|i| i.code as u64 | (i.jt as u64) << 16 | (i.jf as u64) << 24 | (i.k as u64) << 32)
        .collect()
}

/// Add a range, merged into the one before when both always give the same answer.
fn extend<'a>(ranges: &mut Vec<(u32, &'a Call)>, start: u32, call: &'a Call) {
    if let (Some((_, Call::Ret(a))), Call::Ret(b)) = (ranges.last(), call) {
        if a == b {
            return;
        }
    }
    ranges.push((start, call));
}
