export { CompiledGraph, type Conv2dOptions, type Device, type GemmOperand, GraphBuilder, GraphError, type GraphInput, type UnaryOptions, Value } from './builder';
export { Act, OP_NAMES, OP_SCHEMA, type OpAttrs, type OpName, type OpSchema, actFromName, encodeAttrs, opCode } from './ops';
export { type WinogradPolicy, setWinogradPolicy, winogradPolicy } from './winograd';
