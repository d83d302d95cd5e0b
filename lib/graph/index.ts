export { CompiledGraph, type Conv2dOptions, type Device, type GemmOperand, GraphBuilder, GraphError, type GraphInput, type UnaryOptions, Value } from './builder';
export { Act, OPS, type OpDef, type OpName, actFromName, opCode } from './ops';
export { type WinogradPolicy, releaseWinograd, setWinogradPolicy, winogradPolicy } from './winograd';
