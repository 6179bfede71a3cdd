// The transfer engine: payload bytes moved by the kernel, never through JavaScript.
//
//   sendfile: file → socket (the store serving a file payload), sendfile(2) from an offset;
//   splice:   socket → pipe → socket (the front end delivering a store's response body to its
//             client), splice(2) twice, exactly `length` bytes, never a byte past them, so the
//             next response on the store connection stays in its socket.
//
// One engine thread runs every transfer from an epoll set of its own (edge-triggered): Node's
// libuv loop keeps the same sockets in its set, but JavaScript has stopped reading (splice
// source) and queued nothing (destination) while a transfer runs, so the two never touch the same
// direction of a socket at once. The engine works on duplicates of the descriptors it is given:
// should Node close a socket meanwhile (a timeout, a reset seen by its reader), the number is not
// reused under the engine, whose bytes still reach the socket they were meant for; JavaScript
// cancels the transfer then, and the socket goes with the engine's duplicate. A transfer ends when its bytes are written, on an error, when it
// makes no progress for its idle limit (one for each end), or when JavaScript cancels it; its fds leave the engine's set
// before JavaScript hears of the end, so it may close or reuse them at once. The end is reported
// on the loop thread through one thread-safe function: (id, errno or 0, bytes written).
//
// Most transfers are small enough to finish at once: the sockets take the bytes as soon as they
// are offered. So a transfer first runs a bounded step on the caller's thread, on the caller's
// own descriptors, and only what is left after it goes to the engine thread (duplicated then);
// one that finished there is answered at once, with no thread woken. Two wake-ups (to the engine
// and back to the loop) cost more than moving 64 KiB on this kind of machine. Empty pipes are
// kept for the next splice instead of being made (and sized) per transfer.
#include "transfer.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "addon.h"

namespace {

using Clock = std::chrono::steady_clock;

// Pipe capacity asked for splice transfers: fewer, larger splices than the default 64 KiB.
constexpr int kPipeBytes = 1 << 20;
// Largest single sendfile: bounds how long one call holds the engine thread.
constexpr size_t kSendfileChunk = 4 << 20;
// Most bytes the first step moves on the caller's (the event loop's) thread.
constexpr int64_t kInlineBytes = 256 << 10;
// Empty pipes kept for later splices.
constexpr size_t kPipePoolSize = 16;

enum class Kind { kSendfile, kSplice };

struct Transfer {
  uint32_t id = 0;
  Kind kind = Kind::kSendfile;
  int src = -1;
  int dst = -1;
  int64_t offset = 0;     // sendfile: the file offset of the next byte
  int64_t remaining = 0;  // bytes not yet taken from the source
  int64_t written = 0;    // bytes written to the destination
  int pipe[2] = {-1, -1};
  int64_t in_pipe = 0;
  int64_t pipe_capacity = 0;
  int64_t idle_ms = 0;              // waiting on the source (0: no limit)
  int64_t idle_ms_destination = 0;  // waiting on the destination (0: no limit)
  Clock::time_point last_progress;
  struct stat file{};  // sendfile: the file as JavaScript checked it, before the first byte
};

// True while the file is the one the transfer started with: same inode, size and mtime. Checked
// after every sendfile, so a file written to in place while it is sent ends the transfer short of
// its length (the last byte waits for the check of everything before it).
bool SameFile(const Transfer& t) {
  struct stat now{};
  if (fstat(t.src, &now) != 0) return false;
  return now.st_dev == t.file.st_dev && now.st_ino == t.file.st_ino && now.st_size == t.file.st_size &&
         now.st_mtim.tv_sec == t.file.st_mtim.tv_sec && now.st_mtim.tv_nsec == t.file.st_mtim.tv_nsec;
}

// Pipes between splices: taken by the loop thread, given back by whichever thread ended the
// transfer, and only when empty (bytes left in a pipe belong to a transfer that failed).
class PipePool {
 public:
  // A pipe (its capacity in `capacity`), or false with errno set.
  bool Take(int fds[2], int64_t* capacity) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        Pipe p = free_.back();
        free_.pop_back();
        fds[0] = p.read;
        fds[1] = p.write;
        *capacity = p.capacity;
        return true;
      }
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    int size = fcntl(fds[1], F_SETPIPE_SZ, kPipeBytes);
    if (size < 0) size = fcntl(fds[1], F_GETPIPE_SZ);
    *capacity = size > 0 ? size : 65536;
    return true;
  }

  void Give(int fds[2], int64_t capacity) {
    if (fds[0] < 0) return;
    int queued = -1;
    bool empty = ioctl(fds[0], FIONREAD, &queued) == 0 && queued == 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (empty && free_.size() < kPipePoolSize) {
        free_.push_back(Pipe{fds[0], fds[1], capacity});
        fds[0] = fds[1] = -1;
        return;
      }
    }
    close(fds[0]);
    close(fds[1]);
    fds[0] = fds[1] = -1;
  }

 private:
  struct Pipe {
    int read;
    int write;
    int64_t capacity;
  };
  std::mutex mutex_;
  std::vector<Pipe> free_;
};

PipePool pipes;

// What epoll reports for a transfer's fd: its id, shifted, and 1 for the source; 0 is the wake-up
// eventfd. An id, not a pointer: an event of the same round may name a transfer already ended.
uint64_t WatchKey(uint32_t id, bool is_src) { return (static_cast<uint64_t>(id) << 1) | (is_src ? 1 : 0); }

// Which end of a transfer failed (or was waited on when the idle timeout struck).
enum Side { kNoSide = 0, kSource = 1, kDestination = 2 };

struct Ended {
  uint32_t id;
  int error;
  int side;
  int64_t written;
};

// What one step of a transfer came to.
struct Outcome {
  bool ended = false;  // false: it waits for a socket
  int error = 0;
  Side side = kNoSide;
};

Outcome Finished(int error = 0, Side side = kNoSide) { return Outcome{true, error, side}; }

// Moves as many bytes as the sockets take now, at most `budget` (negative: no bound). Returns
// whether the transfer ended (done or failed) or waits for a socket (or for the budget's end).
Outcome Step(Transfer& t, int64_t budget) {
  for (;;) {
    bool progress = false;
    if (budget == 0) return Outcome{};
    if (t.kind == Kind::kSendfile) {
      if (t.remaining == 0) return Finished();
      int64_t chunk = std::min<int64_t>(t.remaining, kSendfileChunk);
      if (budget > 0) chunk = std::min(chunk, budget);
      // The last byte goes alone, after the check of every byte before it.
      if (chunk == t.remaining && chunk > 1) chunk--;
      off_t offset = static_cast<off_t>(t.offset);
      ssize_t n = sendfile(t.dst, t.src, &offset, static_cast<size_t>(chunk));
      if (n > 0) {
        t.offset += n;
        t.remaining -= n;
        t.written += n;
        if (budget > 0) budget -= std::min<int64_t>(budget, n);
        progress = true;
        if (!SameFile(t)) return Finished(ESTALE, kSource);
      } else if (n == 0) {
        return Finished(ENODATA, kSource);  // the file is shorter than the range: it changed
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN) {
        // sendfile does not say which end failed: a socket error is the usual one.
        return Finished(errno, errno == EIO ? kSource : kDestination);
      }
    } else {
      if (t.remaining > 0 && t.in_pipe < t.pipe_capacity) {
        int64_t want = std::min<int64_t>(t.remaining, t.pipe_capacity - t.in_pipe);
        if (budget > 0) want = std::min(want, budget);
        ssize_t n = splice(t.src, nullptr, t.pipe[1], nullptr, static_cast<size_t>(want),
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          t.remaining -= n;
          t.in_pipe += n;
          if (budget > 0) budget -= std::min<int64_t>(budget, n);
          progress = true;
        } else if (n == 0) {
          return Finished(ECONNRESET, kSource);  // the source closed before the announced length
        } else if (errno != EAGAIN && errno != EINTR) {
          return Finished(errno, kSource);
        }
      }
      if (t.in_pipe > 0) {
        ssize_t n = splice(t.pipe[0], nullptr, t.dst, nullptr, static_cast<size_t>(t.in_pipe),
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          t.in_pipe -= n;
          t.written += n;
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          return Finished(errno, kDestination);
        }
      }
      if (t.remaining == 0 && t.in_pipe == 0) return Finished();
    }
    if (!progress) return Outcome{};
    t.last_progress = Clock::now();
  }
}

class Engine {
 public:
  static Engine* Get(Napi::Env env, Napi::Function on_end);
  static Engine* Existing() { return instance_; }

  // Called on the loop thread. Returns false (errno set) when the fds cannot be watched.
  bool Start(std::unique_ptr<Transfer> transfer);
  void Cancel(uint32_t id);
  size_t Active() {
    std::lock_guard<std::mutex> lock(mutex_);
    return pending_.size() + active_count_;
  }

 private:
  Engine() = default;
  void Run();
  void Admit();
  void Pump(Transfer& t);
  void End(uint32_t id, int error, Side side = kNoSide);
  void CheckIdle();
  int WaitMs();
  static void CallJs(Napi::Env env, Napi::Function on_end, void*, Ended* ended);

  static Engine* instance_;
  int epoll_ = -1;
  int wake_ = -1;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Transfer>> pending_;  // started, not yet seen by the thread
  std::vector<uint32_t> cancels_;
  std::atomic<size_t> active_count_{0};
  std::unordered_map<uint32_t, std::unique_ptr<Transfer>> active_;  // engine thread only
  using Tsfn = Napi::TypedThreadSafeFunction<void, Ended, &Engine::CallJs>;
  Tsfn tsfn_;
};

Engine* Engine::instance_ = nullptr;

Engine* Engine::Get(Napi::Env env, Napi::Function on_end) {
  if (instance_) return instance_;
  auto* engine = new Engine();
  engine->epoll_ = epoll_create1(EPOLL_CLOEXEC);
  engine->wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (engine->epoll_ < 0 || engine->wake_ < 0) {
    int saved = errno;
    if (engine->epoll_ >= 0) close(engine->epoll_);
    if (engine->wake_ >= 0) close(engine->wake_);
    delete engine;
    errno = saved;
    return nullptr;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  epoll_ctl(engine->epoll_, EPOLL_CTL_ADD, engine->wake_, &ev);
  engine->tsfn_ = Tsfn::New(env, on_end, "odb-transfer", 0, 1);
  // The engine lives as long as the process; its callback must not keep the loop alive.
  engine->tsfn_.Unref(env);
  engine->thread_ = std::thread([engine] { engine->Run(); });
  engine->thread_.detach();
  instance_ = engine;
  return engine;
}

void Engine::CallJs(Napi::Env env, Napi::Function on_end, void*, Ended* ended) {
  if (env != nullptr && on_end != nullptr) {
    on_end.Call({Napi::Number::New(env, ended->id), Napi::Number::New(env, ended->error),
                 Napi::Number::New(env, ended->side),
                 Napi::Number::New(env, static_cast<double>(ended->written))});
  }
  delete ended;
}

bool Engine::Start(std::unique_ptr<Transfer> transfer) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(transfer));
  }
  uint64_t one = 1;
  ssize_t ignored = write(wake_, &one, sizeof one);
  (void)ignored;
  return true;
}

void Engine::Cancel(uint32_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancels_.push_back(id);
  }
  uint64_t one = 1;
  ssize_t ignored = write(wake_, &one, sizeof one);
  (void)ignored;
}

void Engine::Admit() {
  std::vector<std::unique_ptr<Transfer>> starting;
  std::vector<uint32_t> cancels;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    starting.swap(pending_);
    cancels.swap(cancels_);
    active_count_ += starting.size();
  }
  for (auto& t : starting) {
    uint32_t id = t->id;
    t->last_progress = Clock::now();
    auto watch = [&](int fd, bool is_src, uint32_t events) {
      epoll_event ev{};
      ev.events = events | EPOLLET | EPOLLRDHUP;
      ev.data.u64 = WatchKey(id, is_src);
      return epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) == 0;
    };
    Transfer& ref = *t;
    active_.emplace(id, std::move(t));
    bool ok = watch(ref.dst, false, EPOLLOUT);
    if (ok && ref.kind == Kind::kSplice) ok = watch(ref.src, true, EPOLLIN);
    if (!ok) {
      End(id, errno);
      continue;
    }
    Pump(ref);
  }
  for (uint32_t id : cancels) {
    if (active_.count(id)) End(id, ECANCELED);
  }
}

// Moves as many bytes as the sockets take now; ends the transfer when done or failed.
void Engine::Pump(Transfer& t) {
  Outcome outcome = Step(t, -1);
  if (outcome.ended) End(t.id, outcome.error, outcome.side);
}

void Engine::End(uint32_t id, int error, Side side) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Transfer& t = *it->second;
  epoll_ctl(epoll_, EPOLL_CTL_DEL, t.dst, nullptr);
  if (t.kind == Kind::kSplice) epoll_ctl(epoll_, EPOLL_CTL_DEL, t.src, nullptr);
  // Bytes still in the pipe never reached the destination: freed with the pipe.
  pipes.Give(t.pipe, t.pipe_capacity);
  close(t.src);
  close(t.dst);
  auto* ended = new Ended{id, error, side, t.written};
  active_.erase(it);
  active_count_--;
  if (tsfn_.BlockingCall(ended) != napi_ok) delete ended;
}

// Which end a stalled transfer waits on: the destination while the pipe holds bytes (a sendfile
// always waits on its destination).
bool WaitsOnDestination(const Transfer& t) { return t.kind == Kind::kSendfile || t.in_pipe > 0; }

int64_t IdleLimitMs(const Transfer& t) { return WaitsOnDestination(t) ? t.idle_ms_destination : t.idle_ms; }

void Engine::CheckIdle() {
  auto now = Clock::now();
  std::vector<uint32_t> idle;
  for (auto& [id, t] : active_) {
    int64_t limit = IdleLimitMs(*t);
    if (limit > 0 && now - t->last_progress > std::chrono::milliseconds(limit)) idle.push_back(id);
  }
  for (uint32_t id : idle) {
    const Transfer& t = *active_[id];
    End(id, ETIMEDOUT, WaitsOnDestination(t) ? kDestination : kSource);
  }
}

int Engine::WaitMs() {
  if (active_.empty()) return -1;
  auto now = Clock::now();
  int64_t soonest = 1000;
  for (auto& [id, t] : active_) {
    int64_t limit = IdleLimitMs(*t);
    if (limit <= 0) continue;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    t->last_progress + std::chrono::milliseconds(limit) - now)
                    .count();
    soonest = std::min<int64_t>(soonest, std::max<int64_t>(left + 1, 0));
  }
  return static_cast<int>(soonest);
}

void Engine::Run() {
  epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epoll_, events, 64, WaitMs());
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      uint64_t key = events[i].data.u64;
      if (key == 0) {
        uint64_t count;
        ssize_t ignored = read(wake_, &count, sizeof count);
        (void)ignored;
        continue;
      }
      auto it = active_.find(static_cast<uint32_t>(key >> 1));
      // An earlier event of this round may have ended it.
      if (it == active_.end()) continue;
      // A destination that hung up or failed: a splice waiting on its source would not notice.
      if ((key & 1) == 0 && (events[i].events & (EPOLLHUP | EPOLLERR))) {
        End(it->first, ECONNRESET, kDestination);
        continue;
      }
      Pump(*it->second);
    }
    Admit();
    CheckIdle();
  }
}

uint32_t next_id = 1;

// transferInit(onEnd): the callback every transfer's end is reported to.
Napi::Value TransferInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsFunction()) return Throw(env, "transferInit(onEnd)");
  if (Engine::Existing()) return Napi::Boolean::New(env, true);
  if (!Engine::Get(env, info[0].As<Napi::Function>())) {
    return Throw(env, std::string("transfer engine: ") + strerror(errno));
  }
  return Napi::Boolean::New(env, true);
}

// transferStart(kind, src, dst, offset, length, idleMs, destinationIdleMs): kind 0 sendfile, 1
// splice; the idle limits apply while it waits on the source and on the destination (0: none).
// Returns
// [errno, side, written] when the transfer ended in its first step (on this thread), else the id
// its end will be reported under. Throws (with errno's text) when it cannot start; nothing is
// then running, and nothing was written.
Napi::Value TransferStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* engine = Engine::Existing();
  if (!engine) return Throw(env, "transferInit first");
  if (info.Length() != 7) {
    return Throw(env, "transferStart(kind, src, dst, offset, length, idleMs, destinationIdleMs)");
  }
  for (size_t i = 0; i < 7; i++) {
    if (!info[i].IsNumber()) return Throw(env, "transferStart: numbers only");
  }
  auto t = std::make_unique<Transfer>();
  t->kind = info[0].As<Napi::Number>().Int32Value() == 1 ? Kind::kSplice : Kind::kSendfile;
  t->src = info[1].As<Napi::Number>().Int32Value();
  t->dst = info[2].As<Napi::Number>().Int32Value();
  t->offset = info[3].As<Napi::Number>().Int64Value();
  t->remaining = info[4].As<Napi::Number>().Int64Value();
  t->idle_ms = info[5].As<Napi::Number>().Int64Value();
  t->idle_ms_destination = info[6].As<Napi::Number>().Int64Value();
  if (t->src < 0 || t->dst < 0 || t->offset < 0 || t->remaining < 0) {
    return Throw(env, "transferStart: negative descriptor, offset or length");
  }
  if (t->kind == Kind::kSendfile && fstat(t->src, &t->file) != 0) {
    return Throw(env, std::string("transfer source: ") + strerror(errno));
  }
  if (t->kind == Kind::kSplice && !pipes.Take(t->pipe, &t->pipe_capacity)) {
    return Throw(env, std::string("transfer pipe: ") + strerror(errno));
  }
  // The first step, here, on the caller's descriptors.
  t->last_progress = Clock::now();
  Outcome first = Step(*t, kInlineBytes);
  if (first.ended) {
    pipes.Give(t->pipe, t->pipe_capacity);
    Napi::Array ended = Napi::Array::New(env, 3);
    ended.Set(0u, Napi::Number::New(env, first.error));
    ended.Set(1u, Napi::Number::New(env, first.side));
    ended.Set(2u, Napi::Number::New(env, static_cast<double>(t->written)));
    return ended;
  }
  // The rest runs on the engine thread, on duplicates (see the top of this file).
  int src = fcntl(t->src, F_DUPFD_CLOEXEC, 0);
  int dst = src < 0 ? -1 : fcntl(t->dst, F_DUPFD_CLOEXEC, 0);
  if (dst < 0) {
    // Bytes may have been written already: reported as a failure of the destination, so the
    // caller cuts it short rather than starting over.
    int saved = errno;
    if (src >= 0) close(src);
    pipes.Give(t->pipe, t->pipe_capacity);
    Napi::Array ended = Napi::Array::New(env, 3);
    ended.Set(0u, Napi::Number::New(env, saved));
    ended.Set(1u, Napi::Number::New(env, kDestination));
    ended.Set(2u, Napi::Number::New(env, static_cast<double>(t->written)));
    return ended;
  }
  t->src = src;
  t->dst = dst;
  t->id = next_id++;
  if (next_id == 0) next_id = 1;
  uint32_t id = t->id;
  engine->Start(std::move(t));
  return Napi::Number::New(env, id);
}

// transferCancel(id): ends the transfer with ECANCELED (reported like any end) if it still runs.
Napi::Value TransferCancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* engine = Engine::Existing();
  if (!engine || info.Length() != 1 || !info[0].IsNumber()) return Throw(env, "transferCancel(id)");
  engine->Cancel(info[0].As<Napi::Number>().Uint32Value());
  return env.Undefined();
}

// transferActive(): transfers started and not yet ended.
Napi::Value TransferActive(const Napi::CallbackInfo& info) {
  Engine* engine = Engine::Existing();
  return Napi::Number::New(info.Env(), engine ? static_cast<double>(engine->Active()) : 0);
}

}  // namespace

void RegisterTransfer(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"transferInit", TransferInit},
                   {"transferStart", TransferStart},
                   {"transferCancel", TransferCancel},
                   {"transferActive", TransferActive}});
}
