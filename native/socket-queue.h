// How much of what a TCP socket sent its peer has acknowledged, for judging how fast it reads.
#pragma once
#include <napi.h>

// Sets `socketBytesAcked` on `exports`.
void RegisterSocketQueue(Napi::Env env, Napi::Object exports);
