// node-sev public API.
export * from './errors';
export * from './platform';
export { probe, type ProbeReport, type ProbeCheck, type ProbeLevel } from './platform/probe';
export * from './owner';
export { Policy, type PolicyFlags, POLICY_BITS } from './launch/policy';
