import type { Classifier, ImageSource, Prediction, StoredModel } from './types.js';

/** The part of `@teachablemachine/image` 0.8.5 this library uses. */
export interface TeachableMachineNamespace {
  loadFromFiles(model: File, weights: File, metadata: File): Promise<{
    predictTopK(image: ImageSource, maxPredictions?: number): Promise<{ className: string; probability: number }[]>;
    /** The layers model; CustomMobileNet.dispose() in 0.8.5 fails on a loaded (not trained) model. */
    model: { dispose(): void };
  }>;
}

/** Load a stored version with `@teachablemachine/image` (TF.js 1.3.1), from memory: no network. */
export async function loadWithTeachableMachine(tmImage: TeachableMachineNamespace, stored: StoredModel): Promise<Classifier> {
  const model = await tmImage.loadFromFiles(
    new File([JSON.stringify(stored.modelJson)], 'model.json', { type: 'application/json' }),
    new File([stored.weights], 'weights.bin', { type: 'application/octet-stream' }),
    new File([JSON.stringify(stored.metadata)], 'metadata.json', { type: 'application/json' }),
  );
  return {
    version: stored.version,
    labels: stored.metadata.labels,
    async predict(source: ImageSource, k = 3): Promise<Prediction[]> {
      // Teachable Machine crops, resizes and scales itself.
      const top = await model.predictTopK(source, k);
      return top.map((p) => ({ productId: p.className, probability: p.probability }));
    },
    dispose: () => model.model.dispose(),
  };
}
