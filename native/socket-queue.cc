// socketBytesAcked(fd): bytes of a TCP connection its peer has acknowledged (TCP_INFO
// tcpi_bytes_acked, Linux >= 4.1). Node knows only when a whole write request has been handed to
// the kernel, and the kernel wakes a writer only once a good part of a send buffer of up to
// several MiB has drained: a peer reading a few KiB/s would look idle for minutes. What it
// acknowledges moves at the pace it reads (in window updates of about one segment).
#include "socket-queue.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "addon.h"

namespace {

Napi::Value SocketBytesAcked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) return Throw(env, "socketBytesAcked(fd)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct tcp_info tcp;
  std::memset(&tcp, 0, sizeof tcp);
  socklen_t length = sizeof tcp;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp, &length) != 0) {
    return Throw(env, std::string("TCP_INFO: ") + (fd < 0 ? "no descriptor" : strerror(errno)));
  }
  // A kernel too old to fill the field reports a shorter structure.
  if (length < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof tcp.tcpi_bytes_acked) {
    return Throw(env, "TCP_INFO has no tcpi_bytes_acked on this kernel");
  }
  return Napi::Number::New(env, static_cast<double>(tcp.tcpi_bytes_acked));
}

}  // namespace

void RegisterSocketQueue(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {{"socketBytesAcked", SocketBytesAcked}});
}
