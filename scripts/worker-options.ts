// Worker settings shared by `alexnet worker` and the tests' in-process workers.
export const WORKER_TUNING = {
  // Heartbeats (and with them the delivery of a cancellation: pause, stop) reach the
  // server at least this often, so a pause or stop lands within a second or two rather
  // than after the SDK's default throttle of up to a minute.
  maxHeartbeatThrottleInterval: '1 second',
  // On SIGTERM a running epoch gets this long, then is cancelled: it checkpoints at the
  // next batch boundary and the next attempt resumes there.
  shutdownGraceTime: '30 seconds',
  // A workflow task bound for a worker that died (SIGKILL, preemption) waits this long on
  // that worker's sticky queue before any worker takes it (the SDK's default: 10 s, paid
  // on every preemption). A busy live worker only loses its cached copy of the workflow.
  stickyQueueScheduleToStartTimeout: '2 seconds',
} as const;
