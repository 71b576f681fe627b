// The native library's TypeScript API: configs (./config), devices and precision
// (./device), the Network (./network), over the addon that ./binding loads.
export * from './config';
export * from './device';
export * from './network';
export type { CudaDevices, LayerSeconds, NativeError, NativeErrorCode, PeakFlops } from './binding';
export { native } from './binding';
