// Experiment (issue 16.3): exact mAP statistics of packed Hamming codes as one
// native CPU kernel behind jax.ffi, to measure what XLA leaves on the table.
// Not part of the library; see README.md next to this file.
//
// Per query q (queries split over `threads` std::threads):
//   pass 1: d_j = popcount(q ^ db_j) and rel_j = any(ql & dl_j) for every row j,
//           one byte d | rel << 7 per row, histograms of all / relevant per d;
//   pass 2: rows in database order with running counts per distance starting at
//           the exclusive prefix sums of the histograms: the stable rank
//           (distance, index) and the relevant items ranked at or before it.
// Outputs as hashjax.metrics._ranking.ranked_stats (no NDCG): ap [qc] and, per
// cut-off k, ap_k, ap_calc_k, hits_k [qc, nk].
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Args {
  const uint32_t *qp, *dp, *ql, *dl;
  const int32_t* kvec;
  int64_t w, lw, n, nk, bits;
  float *ap, *ap_k, *ap_calc_k;
  int32_t* hits_k;
};

// W > 0: a compile-time number of code words (unrolled popcounts); 0: a.w.
// NK: a compile-time number of cut-offs (the per-cut-off sums then live in
// registers: through memory their loop-carried adds cost ~2x the whole pass).
template <int W, int NK>
void Rows(const Args& a, int64_t q0, int64_t q1) {
  const int64_t w = W > 0 ? W : a.w;
  static_assert(NK >= 0 && NK <= 4, "NK");
  // Everything the loops read lives in locals and restrict pointers: the byte
  // stores to `code` may alias anything, and through `a` every iteration would
  // reload n, lw and the pointers (about 1.6x slower).
  const int64_t nb = a.bits + 2, n = a.n, lw = a.lw;
  const uint32_t* __restrict dp = a.dp;
  const uint32_t* __restrict dl = a.dl;
  std::vector<uint8_t> code_buf(n);
  std::vector<int64_t> hall_buf(nb), hrel_buf(nb);
  uint8_t* __restrict code = code_buf.data();
  int64_t* __restrict hall = hall_buf.data();
  int64_t* __restrict hrel = hrel_buf.data();
  double acc_k[4 > NK ? 4 : NK], acc_c[4 > NK ? 4 : NK];
  int64_t hit_k[4 > NK ? 4 : NK], first_rel[4 > NK ? 4 : NK], kv[4 > NK ? 4 : NK];
  for (int i = 0; i < NK; ++i) kv[i] = a.kvec[i];
  for (int64_t q = q0; q < q1; ++q) {
    const uint32_t* qc = a.qp + q * w;
    const uint32_t* qlab = a.ql + q * lw;
    std::fill(hall, hall + nb, 0);
    std::fill(hrel, hrel + nb, 0);
    for (int64_t j = 0; j < n; ++j) {
      const uint32_t* row = dp + j * w;
      int d = 0;
      for (int64_t k = 0; k < w; ++k) d += __builtin_popcount(qc[k] ^ row[k]);
      const uint32_t* lab = dl + j * lw;
      uint32_t any = qlab[0] & lab[0];
      for (int64_t k = 1; k < lw; ++k) any |= qlab[k] & lab[k];
      const int rel = any != 0;
      code[j] = static_cast<uint8_t>(d | (rel << 7));
      ++hall[d];
      hrel[d] += rel;
    }
    // Running counts start at the (relevant) items at smaller distances.
    int64_t sa = 0, sr = 0;
    for (int64_t v = 0; v < nb; ++v) {
      const int64_t ta = hall[v], tr = hrel[v];
      hall[v] = sa;
      hrel[v] = sr;
      sa += ta;
      sr += tr;
    }
    const int64_t num_rel = sr;
    for (int i = 0; i < NK; ++i) {
      first_rel[i] = std::min<int64_t>(kv[i], num_rel);
      acc_k[i] = acc_c[i] = 0.0;
      hit_k[i] = 0;
    }
    // Branch-free (about 1.5x faster than branching on relevance, which is
    // unpredictable): irrelevant items add p = 0.
    int64_t kmax = 0, fmax = 0;
    for (int i = 0; i < NK; ++i) {
      kmax = std::max(kmax, kv[i]);
      fmax = std::max(fmax, first_rel[i]);
    }
    double acc = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const int c = code[j];
      const int d = c & 0x7F;
      const int64_t rel = c >> 7;
      const int64_t rank = ++hall[d];
      const int64_t hits = hrel[d] + rel;
      hrel[d] = hits;
      const double p = static_cast<double>(hits * rel) / static_cast<double>(rank);
      acc += p;
      // The cut-offs concern few items (rank <= k, or among the first min(k, R)
      // relevant): a rarely taken, well predicted branch around them (branch-free
      // they doubled the pass).
      if (NK > 0 && (rank <= kmax || (rel && hits <= fmax))) {
        for (int i = 0; i < NK; ++i) {
          const int64_t in_k = rank <= kv[i];
          acc_k[i] += static_cast<double>(in_k) * p;
          hit_k[i] += in_k & rel;
          acc_c[i] += static_cast<double>(hits <= first_rel[i]) * p;
        }
      }
    }
    a.ap[q] = num_rel > 0 ? static_cast<float>(acc / num_rel) : 0.0f;
    for (int i = 0; i < NK; ++i) {
      a.ap_k[q * a.nk + i] = hit_k[i] > 0 ? static_cast<float>(acc_k[i] / hit_k[i]) : 0.0f;
      a.ap_calc_k[q * a.nk + i] =
          first_rel[i] > 0 ? static_cast<float>(acc_c[i] / first_rel[i]) : 0.0f;
      a.hits_k[q * a.nk + i] = static_cast<int32_t>(hit_k[i]);
    }
  }
}

ffi::Error RankStatsImpl(ffi::Buffer<ffi::U32> qp, ffi::Buffer<ffi::U32> dp,
                         ffi::Buffer<ffi::U32> ql, ffi::Buffer<ffi::U32> dl,
                         ffi::Buffer<ffi::S32> kvec, int64_t bits, int64_t threads,
                         ffi::ResultBuffer<ffi::F32> ap, ffi::ResultBuffer<ffi::F32> ap_k,
                         ffi::ResultBuffer<ffi::F32> ap_calc_k,
                         ffi::ResultBuffer<ffi::S32> hits_k) {
  auto qd = qp.dimensions(), dd = dp.dimensions(), ld = ql.dimensions();
  if (qd.size() != 2 || dd.size() != 2 || qd[1] != dd[1] || ld.size() != 2 || ld[1] < 1)
    return ffi::Error::InvalidArgument("hj_rank_stats: bad code shapes");
  if (bits + 1 > 127 || bits > 32 * qd[1])
    return ffi::Error::InvalidArgument("hj_rank_stats: bits must be <= 126 and fit the words");
  Args a{qp.typed_data(), dp.typed_data(), ql.typed_data(), dl.typed_data(),
         kvec.typed_data(), qd[1], ld[1], dd[0], static_cast<int64_t>(kvec.element_count()), bits,
         ap->typed_data(), ap_k->typed_data(), ap_calc_k->typed_data(),
         hits_k->typed_data()};
  const int64_t nq = qd[0];
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, nq));
  if (a.nk > 4) return ffi::Error::InvalidArgument("hj_rank_stats: at most 4 cut-offs");
  using Fn = void (*)(const Args&, int64_t, int64_t);
  // [words: 1, 2, 4, other][cut-offs 0..4]
  static const Fn table[4][5] = {
      {Rows<1, 0>, Rows<1, 1>, Rows<1, 2>, Rows<1, 3>, Rows<1, 4>},
      {Rows<2, 0>, Rows<2, 1>, Rows<2, 2>, Rows<2, 3>, Rows<2, 4>},
      {Rows<4, 0>, Rows<4, 1>, Rows<4, 2>, Rows<4, 3>, Rows<4, 4>},
      {Rows<0, 0>, Rows<0, 1>, Rows<0, 2>, Rows<0, 3>, Rows<0, 4>}};
  const Fn rows = table[a.w == 1 ? 0 : a.w == 2 ? 1 : a.w == 4 ? 2 : 3][a.nk];
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < nt; ++t)
    pool.emplace_back(rows, std::cref(a), nq * t / nt, nq * (t + 1) / nt);
  rows(a, 0, nq / nt);
  for (auto& th : pool) th.join();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(HjRankStats, RankStatsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Attr<int64_t>("bits")
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());
