// The library's persistent worker pool. A call splits its work into `parts` pieces; the caller runs
// piece 0 and sleeping workers run the rest, or the process's OpenMP team runs them all where the
// process already has one (torch's libgomp; not in a forked child). Results must not depend on
// which thread runs a piece (ops.cpp writes one partial per fixed chunk), so a busy pool simply
// runs a call on its caller.
#pragma once

namespace fp::cpu {

using PartFn = void (*)(void* ctx, int part, int parts);

int pool_num_threads();
void pool_set_num_threads(int n);  // n >= 1; joins the old workers, new ones start lazily
// Runs fn(ctx, p, parts) for p in [0, parts) and returns when all are done; parts <= pool_num_threads().
void pool_run(int parts, PartFn fn, void* ctx);

}  // namespace fp::cpu
