#include "promise_worker.h"

#include <exception>

#include "errors.h"

namespace alexnet {

PromiseWorker::PromiseWorker(Napi::Env env, const char* resource_name)
    : Napi::AsyncWorker(env, resource_name), deferred_(Napi::Promise::Deferred::New(env)) {}

void PromiseWorker::Keep(Napi::Value v) {
  if (!v.IsEmpty() && v.IsObject()) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
}

Napi::Promise PromiseWorker::Start() {
  Napi::Promise promise = deferred_.Promise();
  Queue();
  return promise;
}

Napi::Value PromiseWorker::Result(Napi::Env env) { return env.Undefined(); }

void PromiseWorker::Execute() {
  try {
    Run();
  } catch (const std::exception& e) {
    Fail(error_code_of(e), e.what());
  } catch (...) {
    Fail(ErrorCode::Internal, kUnknownException);
  }
}

// AsyncWorker treats an empty message as success: never set one.
void PromiseWorker::Fail(ErrorCode code, const std::string& message) {
  code_ = code;
  SetError(message.empty() ? std::string(error_code_name(code)) : message);
}

void PromiseWorker::OnOK() {
  Settled();
  Napi::Env env = Env();
  try {
    deferred_.Resolve(Result(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (const std::exception& e) {
    deferred_.Reject(js_error(env, e).Value());
  } catch (...) {  // never terminate the process: the promise rejects, code INTERNAL
    deferred_.Reject(js_error(env, ErrorCode::Internal, kUnknownException).Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  Settled();
  deferred_.Reject(js_error(Env(), code_, e.Message()).Value());
}

}  // namespace alexnet
