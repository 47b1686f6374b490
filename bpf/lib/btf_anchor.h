/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * clang writes a type into an object's BTF only when something in the object
 * uses it, and tools/gen-abi builds src/kernel/abi.gen.ts from that BTF. Maps
 * carry the structs they are keyed and valued by; an enum that is only ever
 * used for its constants (limits, directions, hooks) has no such carrier.
 *
 * TG_BTF_ANCHOR(enum tg_x, tg_x) declares a read-only global of that type
 * named tg_btf_anchor_tg_x. It lives in .rodata beside the programs'
 * `const volatile` configuration, is never read by the programs, costs a few
 * bytes, and cannot be dropped by the optimizer because it has external
 * linkage. This keeps the whole ABI in BTF without inventing carrier structs
 * that would themselves show up in the generated TypeScript.
 */
#ifndef TOLLGATE_BTF_ANCHOR_H
#define TOLLGATE_BTF_ANCHOR_H

#define TG_BTF_ANCHOR(type, name) const volatile type tg_btf_anchor_##name = (type)0

#endif /* TOLLGATE_BTF_ANCHOR_H */
