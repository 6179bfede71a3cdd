// What native/lazy.cc and native/own-memory.cc share: how a function fails, how it is exported.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>
#include <utility>

// Throws a JavaScript Error with `message`; returns undefined for the caller to return.
inline Napi::Value Throw(Napi::Env env, const std::string& message) {
  Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

using AddonFunction = Napi::Value (*)(const Napi::CallbackInfo&);

// Sets each named function on `exports`.
inline void ExportFunctions(Napi::Env env, Napi::Object exports,
                            std::initializer_list<std::pair<const char*, AddonFunction>> functions) {
  for (const auto& [name, function] : functions) exports.Set(name, Napi::Function::New(env, function, name));
}
