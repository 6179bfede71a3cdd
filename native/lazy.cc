// Lazy buffers for ODB stream mode: Buffers whose pages are filled on first touch.
//
// What this addon does (and only this, the logic is in TypeScript, src/lazy/):
//   - one userfaultfd per process, a handler thread that turns page faults into fetch requests
//     (delivered to JavaScript through a thread-safe function) with sequential read-ahead;
//   - regions: anonymous private mappings registered for MISSING (and, when the kernel offers it,
//     WP) faults, exposed as external Buffers; MADV_DONTFORK so a fork never sees missing pages;
//   - fill (UFFDIO_COPY, write-protected so later writes are noticed), poison (UFFDIO_POISON: a
//     JS read then raises SIGBUS, a kernel consumer gets EFAULT), page-state queries;
//   - a SIGBUS handler that names the descriptor of a poisoned region before the process dies.
// Needs Linux with userfaultfd usable by this process (root, CAP_SYS_PTRACE, /dev/userfaultfd,
// or vm.unprivileged_userfaultfd=1 without UFFD_USER_MODE_ONLY, since kernel consumers must fault).
#include <napi.h>

#include "addon.h"
#include "own-memory.h"
#include "socket-queue.h"
#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

// Debian's linux-libc-dev may predate the running kernel: UFFDIO_POISON came with Linux 6.6.
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
  struct uffdio_range range;
  __u64 mode;
  __s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

namespace {

enum PageState : uint8_t { kMissing = 0, kInFlight = 1, kClean = 2, kDirty = 3, kPoisoned = 4 };

struct Region {
  uint32_t id;
  uintptr_t base;
  size_t length;  // bytes visible to JavaScript
  size_t mapped;  // length rounded up to whole pages
  std::vector<uint8_t> pages;
  std::string label;  // "owner <endpoint> descriptor <text>", for the fatal message
  size_t next_sequential = SIZE_MAX;  // page after the last read-ahead chunk
  size_t readahead = 0;               // bytes of the last chunk
  bool released = false;
};

struct FaultRequest {
  uint32_t id;
  size_t offset;
  size_t length;
};

long page_size = 0;
int uffd = -1;
bool have_wp = false;
bool have_poison = false;
size_t min_readahead = 64 * 1024;
size_t max_readahead = 1024 * 1024;
std::mutex mu;
std::map<uintptr_t, std::shared_ptr<Region>> by_base;
std::unordered_map<uint32_t, std::shared_ptr<Region>> by_id;
uint32_t next_id = 1;
Napi::ThreadSafeFunction on_fault;
// Regions whose Buffers were collected, drained by the application thread (takeGone), which
// tells the agent in order with its other messages (a release must not overtake the retain of a
// descriptor forwarded from the region). The finalizer runs after any collection, scavenges
// included; a FinalizationRegistry or WeakRef in JavaScript would keep the Buffer alive until a
// full collection (V8 treats them as strong in scavenges), and full collections are what cost a
// tier its optimised code.
std::vector<uint32_t> gone_for_app;
std::thread handler;
std::atomic<bool> stopping{false};
std::atomic<int64_t> populated_delta{0};  // bytes filled since the main thread last accounted them
// V8 hears of a region's filled bytes only, not of its length (see CreateRegion): on Node 20 only.
std::atomic<bool> count_filled_only{false};
// Poisoned regions for the SIGBUS handler: a fixed table it can read without locks or allocation.
constexpr int kPoisonSlots = 64;
struct PoisonSlot {
  std::atomic<uintptr_t> base{0};
  std::atomic<size_t> mapped{0};
  char label[480];
};
PoisonSlot poison_slots[kPoisonSlots];
std::atomic<int> poison_next{0};

std::shared_ptr<Region> find_region(uintptr_t addr) {
  auto it = by_base.upper_bound(addr);
  if (it == by_base.begin()) return nullptr;
  --it;
  auto& r = it->second;
  return addr < r->base + r->mapped ? r : nullptr;
}

void wake(uintptr_t start, size_t len) {
  struct uffdio_range range = {start, len};
  ioctl(uffd, UFFDIO_WAKE, &range);
}

// Handler thread: turns faults into fetch requests; never blocks on a fetch itself.
void handle_faults() {
  struct uffd_msg msgs[64];
  while (!stopping.load()) {
    struct pollfd pfd = {uffd, POLLIN, 0};
    int ready = poll(&pfd, 1, 200);
    if (ready <= 0) continue;
    ssize_t n = read(uffd, msgs, sizeof msgs);
    if (n <= 0) continue;
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(struct uffd_msg)); i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      uintptr_t addr = msgs[i].arg.pagefault.address & ~(static_cast<uintptr_t>(page_size) - 1);
      uint64_t flags = msgs[i].arg.pagefault.flags;
      std::vector<FaultRequest> requests;
      {
        std::lock_guard<std::mutex> lock(mu);
        auto r = find_region(addr);
        if (!r) continue;
        size_t page = (addr - r->base) / page_size;
        if (flags & UFFD_PAGEFAULT_FLAG_WP) {
          // A write to a filled page: it no longer equals the owner's bytes.
          r->pages[page] = kDirty;
          struct uffdio_writeprotect wp = {{addr, static_cast<unsigned long long>(page_size)}, 0};
          ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
          continue;
        }
        if (r->pages[page] == kInFlight) continue;  // the fill will wake this thread
        if (r->pages[page] != kMissing) {
          wake(addr, page_size);
          continue;
        }
        // Sequential read-ahead: double the chunk while faults follow on, from 64 KiB to 1 MiB.
        size_t chunk = page == r->next_sequential ? std::min(max_readahead, r->readahead * 2) : min_readahead;
        size_t pages = std::max<size_t>(1, chunk / page_size);
        size_t end = page;
        while (end < r->pages.size() && end - page < pages && r->pages[end] == kMissing) r->pages[end++] = kInFlight;
        r->next_sequential = end;
        r->readahead = (end - page) * page_size;
        size_t offset = page * page_size;
        requests.push_back({r->id, offset, std::min(r->length, end * page_size) - offset});
      }
      for (auto& req : requests) {
        auto* copy = new FaultRequest(req);
        on_fault.NonBlockingCall(copy, [](Napi::Env env, Napi::Function fn, FaultRequest* q) {
          fn.Call({Napi::Number::New(env, q->id), Napi::Number::New(env, q->offset), Napi::Number::New(env, q->length)});
          delete q;
        });
      }
    }
  }
}

void on_sigbus(int sig, siginfo_t* info, void*) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (int i = 0; i < kPoisonSlots; i++) {
    uintptr_t base = poison_slots[i].base.load();
    if (base != 0 && addr >= base && addr < base + poison_slots[i].mapped.load()) {
      static const char head[] = "odb: FATAL ODB_ERR_FETCH_ABORTED: this process read bytes of a lazy buffer that could not be fetched (";
      ssize_t ignored = write(2, head, sizeof head - 1);
      ignored = write(2, poison_slots[i].label, strnlen(poison_slots[i].label, sizeof poison_slots[i].label));
      ignored = write(2, "); stopping rather than reading wrong bytes\n", 44);
      (void)ignored;
      _exit(70);
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// init(onFault(id, offset, length)): called once, in the thread that serves faults.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (uffd >= 0) return Throw(env, "lazy buffers: already initialised");
  if (info.Length() < 1 || !info[0].IsFunction()) return Throw(env, "init(onFault) needs a function");
  // Before uffd is set: createRegion, on another thread, may run as soon as it is.
  count_filled_only = Napi::VersionManagement::GetNodeVersion(env)->major == 20;
  uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) return Throw(env, std::string("userfaultfd: ") + strerror(errno));
  struct uffdio_api api = {UFFD_API, 0, 0};
  if (ioctl(uffd, UFFDIO_API, &api) < 0) {
    close(uffd);
    uffd = -1;
    return Throw(env, std::string("UFFDIO_API: ") + strerror(errno));
  }
  uint64_t wanted = 0;
#ifdef UFFD_FEATURE_PAGEFAULT_FLAG_WP
  if (api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) wanted |= UFFD_FEATURE_PAGEFAULT_FLAG_WP;
#endif
  if (api.features & UFFD_FEATURE_POISON) wanted |= UFFD_FEATURE_POISON;
  // The features must be requested in the handshake: open a second descriptor asking for them.
  close(uffd);
  uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  api = {UFFD_API, wanted, 0};
  if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
    if (uffd >= 0) close(uffd);
    uffd = -1;
    return Throw(env, std::string("UFFDIO_API with features: ") + strerror(errno));
  }
#ifdef UFFD_FEATURE_PAGEFAULT_FLAG_WP
  have_wp = (api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) != 0;
#endif
  have_poison = (api.features & UFFD_FEATURE_POISON) != 0;
  on_fault = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "odb-lazy-faults", 0, 1);
  // It does not keep the thread's loop alive: the agent's store does, as long as it runs.
  on_fault.Unref(env);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, nullptr);
  handler = std::thread(handle_faults);
  handler.detach();
  Napi::Object features = Napi::Object::New(env);
  features.Set("writeProtect", have_wp);
  features.Set("poison", have_poison);
  features.Set("pageSize", static_cast<double>(page_size));
  features.Set("externalMemory", count_filled_only ? "filled" : "whole");
  return features;
}

void FinalizeRegion(Napi::Env env, uint8_t*, std::shared_ptr<Region>* hint) {
  std::shared_ptr<Region> r = *hint;
  delete hint;
  {
    std::lock_guard<std::mutex> lock(mu);
    by_base.erase(r->base);
    by_id.erase(r->id);
    r->released = true;
    gone_for_app.push_back(r->id);
  }
  struct uffdio_range range = {r->base, r->mapped};
  ioctl(uffd, UFFDIO_UNREGISTER, &range);
  for (auto& slot : poison_slots) {
    if (slot.base.load() == r->base) slot.base.store(0);
  }
  munmap(reinterpret_cast<void*>(r->base), r->mapped);
  // No external-memory adjustment here, on purpose (see CreateRegion): V8 has already taken the
  // whole length off when it freed the Buffer's backing store.
}

// createRegion(length, label) -> [buffer, id]   (main thread)
Napi::Value CreateRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (uffd < 0) return Throw(env, "lazy buffers: not initialised");
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString()) return Throw(env, "createRegion(length, label)");
  double requested = info[0].As<Napi::Number>().DoubleValue();
  if (!(requested >= 1) || requested > 64.0 * 1024 * 1024 * 1024) return Throw(env, "createRegion: length out of range");
  size_t length = static_cast<size_t>(requested);
  size_t mapped = (length + page_size - 1) / page_size * page_size;
  void* mem = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return Throw(env, std::string("mmap: ") + strerror(errno));
  madvise(mem, mapped, MADV_DONTFORK);
  struct uffdio_register reg = {};
  reg.range = {reinterpret_cast<uintptr_t>(mem), mapped};
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | (have_wp ? UFFDIO_REGISTER_MODE_WP : 0);
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
    int err = errno;
    munmap(mem, mapped);
    return Throw(env, std::string("UFFDIO_REGISTER: ") + strerror(err));
  }
  auto r = std::make_shared<Region>();
  r->base = reinterpret_cast<uintptr_t>(mem);
  r->length = length;
  r->mapped = mapped;
  r->pages.assign(mapped / page_size, kMissing);
  r->label = info[1].As<Napi::String>().Utf8Value();
  {
    std::lock_guard<std::mutex> lock(mu);
    r->id = next_id++;
    by_base[r->base] = r;
    by_id[r->id] = r;
  }
  auto* hint = new std::shared_ptr<Region>(r);
  Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(mem), length, FinalizeRegion, hint);
  // V8 counts the whole length as external memory; only filled pages are real. On Node 20 (V8
  // 11.3, a signed counter that backing stores share) the length is taken off here and pages are
  // counted as they are filled (SyncExternalMemory), so unfetched bytes never push the collector.
  // When the Buffer is freed, V8 takes the whole length off again, and that is left standing: the
  // counter ends lower by the bytes never filled. Giving them back (as this addon once did in the
  // finalizer) looks to V8 like new allocation: it measures external memory as the rise above the
  // counter's lowest point since the last full collection, counts that against the old
  // generation's room, and a scavenge that freed 20 regions then started a full collection at
  // once. V8 11.3 reads the counter only as such differences (process.memoryUsage() does not show
  // it). Newer V8 keeps it unsigned and aborts on a decrease below zero, which this drift would
  // reach: there V8 counts a region's whole length, as for any Buffer, and nothing is adjusted.
  if (count_filled_only) Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(length));
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, buffer);
  out.Set(1u, Napi::Number::New(env, r->id));
  return out;
}

std::shared_ptr<Region> RegionArg(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  std::lock_guard<std::mutex> lock(mu);
  auto it = by_id.find(id);
  return it == by_id.end() ? nullptr : it->second;
}

// fill(id, offset, bytes): offset page-aligned; bytes run to the chunk's end (or the region's).
Napi::Value Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBuffer()) return Throw(env, "fill(id, offset, bytes)");
  auto r = RegionArg(info);
  if (!r) return Napi::Boolean::New(env, false);  // finalised meanwhile: nothing to fill
  size_t offset = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  auto bytes = info[2].As<Napi::Buffer<uint8_t>>();
  if (offset % page_size != 0 || offset + bytes.Length() > r->length) return Throw(env, "fill: range outside the region or unaligned");
  // Whole pages go in runs, one ioctl per run of pages still unfilled; the region's last, partial
  // page is padded with zeros past its end (never visible to JavaScript).
  size_t whole = bytes.Length() / page_size * page_size;
  std::vector<uint8_t> last_page;
  size_t at = 0;
  while (at < bytes.Length()) {
    size_t first_page = (offset + at) / page_size;
    size_t run = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (r->released) break;
      uint8_t state = r->pages[first_page];
      if (state == kClean || state == kDirty) {
        at += page_size;
        continue;
      }
      size_t limit = at < whole ? whole : bytes.Length();
      while (at + run < limit) {
        uint8_t st = r->pages[first_page + run / page_size];
        if (st == kClean || st == kDirty) break;
        run += page_size;
      }
      if (run == 0 || at + run > bytes.Length()) run = bytes.Length() - at;  // the partial page
    }
    const uint8_t* src = bytes.Data() + at;
    size_t len = run;
    if (len % page_size != 0) {
      last_page.assign(page_size, 0);
      memcpy(last_page.data(), src, len);
      src = last_page.data();
      len = page_size;
    }
    struct uffdio_copy copy = {};
    copy.dst = r->base + first_page * page_size;
    copy.src = reinterpret_cast<uintptr_t>(src);
    copy.len = len;
    copy.mode = have_wp ? UFFDIO_COPY_MODE_WP : 0;
    size_t copied = len;
    if (ioctl(uffd, UFFDIO_COPY, &copy) < 0) {
      if (errno != EEXIST) return Throw(env, std::string("UFFDIO_COPY: ") + strerror(errno));
      // A page of the run was already present: what went in before it is in copy.copy; the
      // present page is skipped below and the rest of the run is tried again.
      copied = copy.copy > 0 ? static_cast<size_t>(copy.copy) : 0;
    }
    std::lock_guard<std::mutex> lock(mu);
    for (size_t p = first_page; p < first_page + copied / page_size; p++) {
      if (r->pages[p] != kClean && r->pages[p] != kDirty) {
        r->pages[p] = kClean;
        if (count_filled_only) populated_delta.fetch_add(page_size);
      }
    }
    if (copied < len) {
      size_t present = first_page + copied / page_size;
      if (r->pages[present] != kClean && r->pages[present] != kDirty) r->pages[present] = kClean;
      at += copied + page_size;
    } else {
      at += run;
    }
  }
  return Napi::Boolean::New(env, true);
}

// poison(id, offset, length): reads of these (unfilled) pages fail instead of returning bytes.
Napi::Value Poison(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = RegionArg(info);
  if (!r) return Napi::Boolean::New(env, false);
  size_t offset = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  size_t length = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
  int slot = poison_next.fetch_add(1) % kPoisonSlots;
  strncpy(poison_slots[slot].label, r->label.c_str(), sizeof poison_slots[slot].label - 1);
  poison_slots[slot].mapped.store(r->mapped);
  poison_slots[slot].base.store(r->base);
  for (size_t page = offset / page_size; page * page_size < std::min(offset + length, r->length); page++) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (r->pages[page] == kClean || r->pages[page] == kDirty) continue;
      r->pages[page] = kPoisoned;
    }
    uintptr_t addr = r->base + page * page_size;
    if (have_poison) {
      struct uffdio_poison p = {{addr, static_cast<unsigned long long>(page_size)}, 0, 0};
      if (ioctl(uffd, UFFDIO_POISON, &p) == 0 || errno == EEXIST) continue;
    }
    // Without UFFDIO_POISON a waiting thread cannot be failed safely: stop the process instead.
    static const char msg[] = "odb: FATAL ODB_ERR_FETCH_ABORTED: a lazy buffer could not be fetched and this kernel cannot poison pages\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(70);
  }
  return Napi::Boolean::New(env, true);
}

// pageStates(id, offset, length) -> { missing, inFlight, clean, dirty, poisoned } page counts.
Napi::Value PageStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = RegionArg(info);
  if (!r) return env.Null();
  size_t offset = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  size_t length = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
  size_t counts[5] = {0, 0, 0, 0, 0};
  {
    std::lock_guard<std::mutex> lock(mu);
    size_t end = std::min(offset + length, r->length);
    for (size_t page = offset / page_size; page * page_size < end; page++) counts[r->pages[page]]++;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("missing", static_cast<double>(counts[kMissing]));
  out.Set("inFlight", static_cast<double>(counts[kInFlight]));
  out.Set("clean", static_cast<double>(counts[kClean]));
  out.Set("dirty", static_cast<double>(counts[kDirty]));
  out.Set("poisoned", static_cast<double>(counts[kPoisoned]));
  return out;
}

// requestMissing(id) -> fetch requests for every missing page, in chunks (for materialisation
// without touching the pages from the main thread).
Napi::Value RequestMissing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = RegionArg(info);
  Napi::Array out = Napi::Array::New(env);
  if (!r) return out;
  // Optional byte range [offset, offset + length): only the pages it touches.
  size_t first = 0, last = r->pages.size();
  if (info.Length() >= 3 && info[1].IsNumber() && info[2].IsNumber()) {
    double o = info[1].As<Napi::Number>().DoubleValue();
    double l = info[2].As<Napi::Number>().DoubleValue();
    if (!(o >= 0) || !(l >= 0)) return Throw(env, "requestMissing: bad range");
    first = std::min(last, static_cast<size_t>(o) / page_size);
    last = std::min(last, (static_cast<size_t>(o + l) + page_size - 1) / page_size);
  }
  std::lock_guard<std::mutex> lock(mu);
  size_t pages_per_chunk = max_readahead / page_size;
  uint32_t n = 0;
  for (size_t page = first; page < last;) {
    if (r->pages[page] != kMissing) {
      page++;
      continue;
    }
    size_t end = page;
    while (end < last && end - page < pages_per_chunk && r->pages[end] == kMissing) r->pages[end++] = kInFlight;
    Napi::Array req = Napi::Array::New(env, 2);
    req.Set(0u, static_cast<double>(page * page_size));
    req.Set(1u, static_cast<double>(std::min(r->length, end * page_size) - page * page_size));
    out.Set(n++, req);
    page = end;
  }
  return out;
}

// takeGone() -> ids of the regions finalised since the last call (application thread).
Napi::Value TakeGone(const Napi::CallbackInfo& info) {
  std::vector<uint32_t> ids;
  {
    std::lock_guard<std::mutex> lock(mu);
    ids.swap(gone_for_app);
  }
  Napi::Array out = Napi::Array::New(info.Env(), ids.size());
  for (size_t i = 0; i < ids.size(); i++) out.Set(static_cast<uint32_t>(i), static_cast<double>(ids[i]));
  return out;
}

// syncExternalMemory(): tells V8 about bytes filled since the last call (main thread).
Napi::Value SyncExternalMemory(const Napi::CallbackInfo& info) {
  int64_t delta = populated_delta.exchange(0);
  if (delta != 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), delta);
  return Napi::Number::New(info.Env(), static_cast<double>(delta));
}

// externalMemoryCounter(): V8's external-memory counter (what the collector's heuristics read),
// unchanged. For tests: process.memoryUsage() reports backing stores, not this counter.
Napi::Value ExternalMemoryCounter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(info.Env(), 0)));
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  if (page_size == 0) page_size = sysconf(_SC_PAGESIZE);
  ExportFunctions(env, exports,
                  {{"init", Init},
                   {"createRegion", CreateRegion},
                   {"fill", Fill},
                   {"poison", Poison},
                   {"pageStates", PageStates},
                   {"requestMissing", RequestMissing},
                   {"syncExternalMemory", SyncExternalMemory},
                   {"externalMemoryCounter", ExternalMemoryCounter},
                   {"takeGone", TakeGone},
                   {"initialised", [](const Napi::CallbackInfo& i) -> Napi::Value { return Napi::Boolean::New(i.Env(), uffd >= 0); }}});
  RegisterOwnMemory(env, exports);
  RegisterSocketQueue(env, exports);
  RegisterTransfer(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(odb_lazy, Module)
