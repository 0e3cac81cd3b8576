// k6 1.0–1.8 ship the WebSocket API as `k6/experimental/websockets` (1.6+ also
// as `k6/websockets`); @types/k6 only declares `k6/websockets`. Same API, so
// the scripts import the name every k6 ≥ 1.0 has and get these types.
declare module 'k6/experimental/websockets' {
  export * from 'k6/websockets';
}
