/**
 * TorchServe's built-in handlers: the bare names `--handler` may give instead of a module of the model
 * (`--handler image_classifier`), which of them mar-tools' Python worker runs (its own implementations in the
 * `ts` compatibility package, src/runtime/python/compat/ts/torch_handler/) and which Python packages each needs.
 */

/** One built-in handler name. */
export interface BuiltinHandler {
  readonly name: string;
  /** The class the Python worker runs, `ts.torch_handler.<name>.<className>`; null when only TorchServe ships it. */
  readonly className: string | null;
  /** Python packages (import names) it needs, in the order a user installs them. */
  readonly needs: readonly string[];
}

const VISION = ['torch', 'torchvision', 'PIL'] as const;

/** In TorchServe's documentation order; `vision_handler` and `base_handler` are also the bases of custom handlers. */
export const TORCHSERVE_BUILTINS: readonly BuiltinHandler[] = [
  { name: 'base_handler', className: 'BaseHandler', needs: ['torch'] },
  { name: 'vision_handler', className: 'VisionHandler', needs: ['torch', 'PIL'] },
  { name: 'image_classifier', className: 'ImageClassifier', needs: VISION },
  { name: 'image_segmenter', className: 'ImageSegmenter', needs: VISION },
  { name: 'object_detector', className: 'ObjectDetector', needs: VISION },
  { name: 'text_classifier', className: 'TextClassifier', needs: ['torch'] },
  { name: 'dali_image_classifier', className: null, needs: [] },
  { name: 'vllm_handler', className: null, needs: [] },
  { name: 'trt_llm_handler', className: null, needs: [] },
];

/** The built-in a module name stands for, if any (a bare module name, as TorchServe's loader falls back to it). */
export function builtinHandler(module: string): BuiltinHandler | undefined {
  return TORCHSERVE_BUILTINS.find((b) => b.name === module);
}

/** `a TorchServe built-in handler: model-server runs ts.torch_handler.<name>.<Class> (needs ...)`, or why it cannot. */
export function describeBuiltin(b: BuiltinHandler): string {
  return b.className === null
    ? 'a TorchServe built-in handler that only TorchServe ships: MMS and model-server cannot run it'
    : `a TorchServe built-in handler: model-server runs ts.torch_handler.${b.name}.${b.className} (needs ${b.needs.join(', ')})`;
}

/** The Python packages (import names) a handler's source imports at the top level, among those we give advice on. */
export function pythonImportsOf(source: string): string[] {
  const found = new Set<string>();
  for (const m of source.matchAll(/^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import|import[ \t]+([\w.]+))/gm)) {
    const path = (m[1] ?? m[2] ?? '').split('.');
    // A TorchServe handler base needs what that built-in needs.
    if (path[0] === 'ts' && path[1] === 'torch_handler') for (const p of builtinHandler(path[2] ?? '')?.needs ?? ['torch']) found.add(p);
    if (KNOWN_PACKAGES.includes(path[0]!)) found.add(path[0]!);
  }
  return KNOWN_PACKAGES.filter((p) => found.has(p));
}

const KNOWN_PACKAGES = ['torch', 'torchvision', 'PIL', 'torchtext', 'numpy'];
