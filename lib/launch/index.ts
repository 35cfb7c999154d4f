export { SevLaunch, LaunchStarted, LaunchMeasured, LaunchFinished, type SevMode, type StreamOptions, type StreamFileOptions, type StreamProgress, type StreamResult } from './launcher';
export { Policy, POLICY_BITS, type PolicyFlags } from './policy';
export { planChunks, validateRanges, UPDATE_ALIGNMENT, type Range } from './ranges';
export { memlockInfo, type MemlockInfo } from './memlock';
export { SnpLaunch, SnpLaunchStarted, SnpLaunchFinished, type SnpLaunchInitOptions, type SnpUpdateOptions, type SnpStreamFileOptions } from './snp-launcher';
