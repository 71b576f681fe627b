// The base of every asynchronous operation: Run() computes on the libuv pool, touching no
// JS value, and the promise resolves with Result() or rejects with a JS Error whose `code`
// says what failed (errors.h). Whatever Run() or Result() throws is caught and rejects
// the promise: a Napi::Error as it is, a std::exception with its message and code,
// anything else as INTERNAL. Buffers the work reads or writes are kept
// referenced (Keep) until the promise settles.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "error.h"

namespace alexnet {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  // Keeps an object (a typed array the work holds a pointer into) alive and in place.
  void Keep(Napi::Value v);
  // Queues the work; the worker deletes itself once the promise has settled.
  Napi::Promise Start();

 protected:
  PromiseWorker(Napi::Env env, const char* resource_name);
  // Off the event loop: the work; throws to reject.
  virtual void Run() = 0;
  // On the event loop, after Run returned: what the promise resolves with (undefined).
  virtual Napi::Value Result(Napi::Env env);
  // On the event loop, first thing once Run has finished, either way.
  virtual void Settled() {}

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error& e) final;
  void Fail(ErrorCode code, const std::string& message);

  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;
  ErrorCode code_ = ErrorCode::Internal;
};

}  // namespace alexnet
