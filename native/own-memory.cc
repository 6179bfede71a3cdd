// Own-payload memory for ODB stream mode: the bytes of payloads this process sends as
// descriptors, held for fetches by its store and given back the moment the store drops them.
//
// Why not a SharedArrayBuffer: its memory goes only once every isolate holding a wrapper (the
// application's thread and the agent's) has collected it, so a busy owner's memory rose and fell
// by tens of MiB with garbage collection. Here the store frees a payload explicitly.
//
// Each payload is one anonymous private mapping (MAP_NORESERVE: a payload gathered to an
// unknown size reserves its cap and commits pages as they are written; MADV_DONTFORK). The
// application thread allocates and writes it, then hands its id to the agent, which serves
// fetches from external Buffers ("views") of it and frees it when the store drops the payload.
// Views keep the mapping; a free while views are alive gives the pages back (MADV_DONTNEED) and
// makes them inaccessible (PROT_NONE), so a read after the free faults loudly instead of seeing
// zeros, and the mapping goes with the last view. The store frees only once no fetch is reading
// or writing a view (see StoreServer), so that fault is a bug guard, not a path.
//
// Fresh anonymous pages cost a fault and a zeroing each: about 1 ms per MiB written on this kind
// of VM, against 40 µs into pages already mapped. So a freed slab that no view holds keeps its
// mapping and pages in a small pool (kPoolBytes) for the next allocation of the same size; the
// store's reader releases its views explicitly (ownUnview, which detaches the Buffer) once its
// writes are done, so that at the free no view is usually left. ownTrim empties the pool.
#include "own-memory.h"

#include "addon.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Slab;

// A view's hold on its slab: released by ownUnview or by the view's finalizer, whichever is first.
struct ViewRef {
  std::shared_ptr<Slab> slab;
  const uint8_t* data;
  bool released;
};

struct Slab {
  uint32_t id;
  uint8_t* base;
  size_t capacity;  // bytes that may be written
  size_t mapped;    // capacity rounded up to whole pages (or the pooled mapping's size)
  uint32_t refs;    // the owner's (until freed) + one per unreleased view
  bool freed;
  std::vector<ViewRef*> views;  // unreleased views
};

// A mapping kept for reuse: its pages stay committed (they hold an earlier payload's bytes, which
// a new payload overwrites before they are served: views cover only what was handed off).
struct Pooled {
  uint8_t* base;
  size_t mapped;
};
constexpr size_t kPoolBytes = 64 * 1024 * 1024;

std::mutex mu;
std::unordered_map<uint32_t, std::shared_ptr<Slab>> slabs;
uint32_t next_id = 1;
size_t page_size = 0;
size_t live_bytes = 0;    // capacity of slabs not yet freed
size_t retired_slabs = 0;  // freed, mapping kept for views still alive
std::vector<Pooled> pool;
size_t pooled_bytes = 0;
uint64_t pool_hits = 0;

// Keeps a freed slab's mapping for reuse if the pool has room; else unmaps it. Caller holds `mu`.
void PoolOrUnmap(uint8_t* base, size_t mapped) {
  if (pooled_bytes + mapped <= kPoolBytes) {
    pool.push_back({base, mapped});
    pooled_bytes += mapped;
  } else {
    munmap(base, mapped);
  }
}

// A pooled mapping of at least `mapped` bytes and at most twice that, taken out of the pool.
// Caller holds `mu`.
bool TakePooled(size_t mapped, Pooled* out) {
  for (size_t i = 0; i < pool.size(); i++) {
    if (pool[i].mapped < mapped || pool[i].mapped > 2 * mapped) continue;
    *out = pool[i];
    pool[i] = pool.back();
    pool.pop_back();
    pooled_bytes -= out->mapped;
    pool_hits++;
    return true;
  }
  return false;
}

// Drops one reference; the last one of a freed slab unmaps it (its pages were given back at the
// free, so it is not worth pooling). Caller holds `mu`.
void Unref(const std::shared_ptr<Slab>& slab) {
  if (--slab->refs > 0 || !slab->freed) return;
  munmap(slab->base, slab->mapped);
  slabs.erase(slab->id);
  retired_slabs--;
}

// Releases a view's hold once. Caller holds `mu`.
void ReleaseView(ViewRef* ref) {
  if (ref->released) return;
  ref->released = true;
  auto& views = ref->slab->views;
  for (size_t i = 0; i < views.size(); i++) {
    if (views[i] != ref) continue;
    views[i] = views.back();
    views.pop_back();
    break;
  }
  Unref(ref->slab);
}

// The slab with id info[0], if it was not freed. Caller holds `mu`.
std::shared_ptr<Slab> LiveSlab(const Napi::CallbackInfo& info) {
  auto it = slabs.find(info[0].As<Napi::Number>().Uint32Value());
  return it == slabs.end() || it->second->freed ? nullptr : it->second;
}

// Checks that [offset, offset + length) lies within the slab's capacity.
bool RangeArgs(const Napi::CallbackInfo& info, const Slab& slab, size_t* offset, size_t* length) {
  double o = info[1].As<Napi::Number>().DoubleValue();
  double l = info[2].As<Napi::Number>().DoubleValue();
  if (!(o >= 0) || !(l >= 0) || o + l > static_cast<double>(slab.capacity)) return false;
  *offset = static_cast<size_t>(o);
  *length = static_cast<size_t>(l);
  return true;
}

// ownAllocate(capacity) -> id
Napi::Value Allocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return Throw(env, "ownAllocate(capacity)");
  double requested = info[0].As<Napi::Number>().DoubleValue();
  if (!(requested >= 1) || requested > 64.0 * 1024 * 1024 * 1024) return Throw(env, "ownAllocate: capacity out of range");
  auto slab = std::make_shared<Slab>();
  slab->capacity = static_cast<size_t>(requested);
  slab->mapped = (slab->capacity + page_size - 1) / page_size * page_size;
  slab->refs = 1;
  slab->freed = false;
  Pooled reuse{nullptr, 0};
  {
    std::lock_guard<std::mutex> lock(mu);
    TakePooled(slab->mapped, &reuse);
  }
  if (reuse.base) {
    slab->base = reuse.base;
    slab->mapped = reuse.mapped;
  } else {
    void* mem = mmap(nullptr, slab->mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) return Throw(env, std::string("ownAllocate: mmap: ") + strerror(errno));
    madvise(mem, slab->mapped, MADV_DONTFORK);
    slab->base = static_cast<uint8_t*>(mem);
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    slab->id = next_id++;
    slabs[slab->id] = slab;
    live_bytes += slab->capacity;
  }
  return Napi::Number::New(env, slab->id);
}

// ownWrite(id, offset, bytes): before the slab is handed to the agent (application thread).
// Nothing that can allocate on the JavaScript heap (so collect, and run finalizers that take the
// lock) happens while the lock is held, here and below.
Napi::Value Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsTypedArray()) return Throw(env, "ownWrite(id, offset, bytes)");
  auto bytes = info[2].As<Napi::Uint8Array>();
  double offset = info[1].As<Napi::Number>().DoubleValue();
  const char* problem = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto slab = LiveSlab(info);
    if (!slab)
      problem = "ownWrite: payload memory was freed";
    else if (!(offset >= 0) || offset + bytes.ByteLength() > slab->capacity)
      problem = "ownWrite: range outside the payload";
    else
      memcpy(slab->base + static_cast<size_t>(offset), bytes.Data(), bytes.ByteLength());
  }
  return problem ? Throw(env, problem) : env.Undefined();
}

// ownCopy(id, offset, length) -> a new Buffer with those bytes, or null once freed. Copies under
// the lock, so a concurrent free (the agent's thread) waits for it.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) return Throw(env, "ownCopy(id, offset, length)");
  double requested = info[2].As<Napi::Number>().DoubleValue();
  if (!(requested >= 0) || requested > 64.0 * 1024 * 1024 * 1024) return Throw(env, "ownCopy: range outside the payload");
  auto out = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(requested));
  size_t offset, length;
  std::shared_ptr<Slab> slab;
  {
    std::lock_guard<std::mutex> lock(mu);
    slab = LiveSlab(info);
    if (!slab) return env.Null();
    if (!RangeArgs(info, *slab, &offset, &length)) slab = nullptr;
    else memcpy(out.Data(), slab->base + offset, length);
  }
  return slab ? out : Throw(env, "ownCopy: range outside the payload");
}

void FinalizeView(Napi::Env, uint8_t*, ViewRef* ref) {
  std::lock_guard<std::mutex> lock(mu);
  ReleaseView(ref);
  delete ref;
}

// ownView(id, offset, length) -> an external Buffer over those bytes, or null once freed.
Napi::Value View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) return Throw(env, "ownView(id, offset, length)");
  std::shared_ptr<Slab> slab;
  size_t offset = 0, length = 0;
  bool in_range = false;
  ViewRef* ref = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    slab = LiveSlab(info);
    if (slab && (in_range = RangeArgs(info, *slab, &offset, &length)) && length > 0) {
      slab->refs++;
      ref = new ViewRef{slab, slab->base + offset, false};
      slab->views.push_back(ref);
    }
  }
  if (!slab) return env.Null();
  if (!in_range) return Throw(env, "ownView: range outside the payload");
  if (length == 0) return Napi::Buffer<uint8_t>::New(env, 0);
  return Napi::Buffer<uint8_t>::New(env, slab->base + offset, length, FinalizeView, ref);
}

// ownUnview(id, view): the caller is done with a view ownView gave it, kernel writes included.
// Its Buffer is detached (it reads as empty from here on, everywhere it is referenced) and its
// hold on the payload released now rather than when it is collected. Anything else is ignored.
Napi::Value Unview(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray()) return Throw(env, "ownUnview(id, view)");
  auto view = info[1].As<Napi::Uint8Array>();
  const uint8_t* data = static_cast<const uint8_t*>(view.ArrayBuffer().Data());
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = slabs.find(info[0].As<Napi::Number>().Uint32Value());
    if (it != slabs.end()) {
      for (ViewRef* ref : it->second->views) {
        if (ref->data != data) continue;
        found = true;
        ReleaseView(ref);  // the finalizer still deletes it
        break;
      }
    }
  }
  if (found) view.ArrayBuffer().Detach();
  return env.Undefined();
}

// ownFree(id): the payload is gone. Its pages are given back now; the mapping goes now or with
// its last view. Idempotent.
Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return Throw(env, "ownFree(id)");
  std::lock_guard<std::mutex> lock(mu);
  auto slab = LiveSlab(info);
  if (!slab) return env.Undefined();
  slab->freed = true;
  live_bytes -= slab->capacity;
  if (slab->refs == 1) {
    PoolOrUnmap(slab->base, slab->mapped);
    slabs.erase(slab->id);
    return env.Undefined();
  }
  retired_slabs++;
  // Under the lock: the last view's finalizer must not unmap while this runs.
  madvise(slab->base, slab->mapped, MADV_DONTNEED);
  mprotect(slab->base, slab->mapped, PROT_NONE);
  Unref(slab);
  return env.Undefined();
}

// ownTrim(): unmaps the pooled mappings (a process that fell quiet gives their pages back).
Napi::Value Trim(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(mu);
  for (const Pooled& p : pool) munmap(p.base, p.mapped);
  pool.clear();
  pooled_bytes = 0;
  return info.Env().Undefined();
}

// ownStats() -> { live, liveBytes, retired, pooledBytes, poolHits }: slabs not freed, their
// capacity, freed slabs whose mapping waits for views to be collected, the pool's mappings, and
// allocations the pool served.
Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double live, bytes, retired, pooled, hits;
  {
    std::lock_guard<std::mutex> lock(mu);
    live = static_cast<double>(slabs.size() - retired_slabs);
    bytes = static_cast<double>(live_bytes);
    retired = static_cast<double>(retired_slabs);
    pooled = static_cast<double>(pooled_bytes);
    hits = static_cast<double>(pool_hits);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("live", live);
  out.Set("liveBytes", bytes);
  out.Set("retired", retired);
  out.Set("pooledBytes", pooled);
  out.Set("poolHits", hits);
  return out;
}

}  // namespace

void RegisterOwnMemory(Napi::Env env, Napi::Object exports) {
  if (page_size == 0) page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  ExportFunctions(env, exports,
                  {{"ownAllocate", Allocate},
                   {"ownWrite", Write},
                   {"ownCopy", Copy},
                   {"ownView", View},
                   {"ownUnview", Unview},
                   {"ownFree", Free},
                   {"ownTrim", Trim},
                   {"ownStats", Stats}});
}
