// The transfer engine (sendfile and splice on a thread of its own): see transfer.cc.
#pragma once
#include <napi.h>

void RegisterTransfer(Napi::Env env, Napi::Object exports);
