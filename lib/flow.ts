// Commands are written once, as generators that yield native calls; a driver runs them either
// inline (the *Sync API) or awaiting each call on the thread pool (the Promise API). Multi-step
// commands such as "query the length, then fetch" read the same in both forms.
import { SevError } from './errors';
import type { NativeOutcome } from './native';

/** One native call: given `async`, returns the outcome or a Promise of it. */
export type NativeCall<O extends NativeOutcome = NativeOutcome> = (async: boolean) => O | Promise<O>;

/** A command: yields native calls, receives their outcomes, returns the result. */
export type Flow<T> = Generator<NativeCall, T, NativeOutcome>;

export function runSync<T>(flow: Flow<T>): T {
  let step = flow.next();
  while (!step.done) step = flow.next(step.value(false) as NativeOutcome);
  return step.value;
}

export async function runAsync<T>(flow: Flow<T>): Promise<T> {
  let step = flow.next();
  while (!step.done) step = flow.next(await step.value(true));
  return step.value;
}

/** Yields one call and returns its outcome, typed as the call's own outcome type. */
export function* call<O extends NativeOutcome>(c: NativeCall<O>): Generator<NativeCall, O, NativeOutcome> {
  return (yield c as NativeCall) as O;
}

/** Throws the typed error for a failed ioctl. */
export function check<O extends NativeOutcome>(command: string, o: O): O {
  if (o.errno !== 0) throw SevError.fromIoctl(command, o.errno, o.fwError);
  return o;
}
