export { CompiledGraph, type Conv2dOptions, type Device, type GemmOperand, GraphBuilder, GraphError, type GraphFallback, type GraphInput, type NodePlacement, PRECISIONS, type Precision, type RunProfileEntry, type UnaryOptions, Value, bf16Support, withFallbackReports } from './builder';
export { Act, OP_NAMES, OP_SCHEMA, type OpAttrs, type OpName, type OpSchema, actFromName, encodeAttrs, opCode } from './ops';
export { type WinogradPolicy, setWinogradPolicy, winogradPolicy } from './winograd';
