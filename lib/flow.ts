// Commands are written once, as generators that yield native calls; a driver runs them either
// inline (the *Sync API) or awaiting each call on the thread pool (the Promise API). Multi-step
// commands such as "query the length, then fetch" read the same in both forms.
import { constants as osConstants } from 'node:os';

import { FIRMWARE_STATUS_CODE, SevError } from './errors';
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

/** Upper bound for a length the firmware asks for in a length query (SEV_FW_BLOB_MAX_SIZE). */
const MAX_QUERIED_LENGTH = 0x4000;

/**
 * The firmware's answer to a length query (a null buffer or one too small): EIO with INVALID_LEN
 * and the needed length written back (or success). Anything else is thrown as the typed error.
 */
export function queriedLength(command: string, o: NativeOutcome, length: number): number {
  const invalidLen = o.errno === osConstants.errno.EIO && o.fwError === FIRMWARE_STATUS_CODE.INVALID_LEN;
  if (o.errno !== 0 && !invalidLen) check(command, o);
  if (length <= 0 || length > MAX_QUERIED_LENGTH) {
    // An INVALID_LEN that wrote back no usable length is a plain firmware failure: report it
    // under the firmware's status, not as a length problem of ours.
    if (invalidLen) throw SevError.fromIoctl(command, o.errno, o.fwError);
    throw new SevError(`${command}: firmware asked for an implausible length ${length}`, { command, errno: osConstants.errno.EIO });
  }
  return length;
}
