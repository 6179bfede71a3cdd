// Own-payload memory (native/own-memory.cc), registered on the same addon as the lazy buffers.
#pragma once
#include <napi.h>

// Adds ownAllocate, ownWrite, ownCopy, ownView, ownUnview, ownFree, ownTrim and ownStats to `exports`.
void RegisterOwnMemory(Napi::Env env, Napi::Object exports);
