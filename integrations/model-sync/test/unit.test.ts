/** Verification and ranking without a browser (node:test). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkMetadata, checkModelJson, outputUnits } from '../src/verify.js';
import { topK } from '../src/tfjs.js';
import { ModelSync } from '../src/sync.js';
import type { LayersModelJson } from '../src/types.js';

const dense = (units: number) => ({ class_name: 'Dense', config: { units, name: `dense_${units}` } });
// The shape of a Teachable Machine export: Sequential[ Sequential[base...], Sequential[Dense(100), Dense(N)] ].
const topology = {
  class_name: 'Sequential',
  config: { layers: [{ class_name: 'Sequential', config: { layers: [{ class_name: 'Conv2D', config: {} }] } },
                     { class_name: 'Sequential', config: { layers: [dense(100), dense(3)] } }] },
};
const modelJson = (weights: LayersModelJson['weightsManifest'][number]['weights'], paths = ['weights.bin']): unknown => ({
  format: 'layers-model', modelTopology: topology, weightsManifest: [{ paths, weights }],
});

test('the weights manifest gives the bytes weights.bin must have', () => {
  const { weightBytes } = checkModelJson(modelJson([
    { name: 'k', shape: [1280, 100], dtype: 'float32' },
    { name: 'b', shape: [100], dtype: 'float32' },
    { name: 'q', shape: [100, 3], dtype: 'float32', quantization: { dtype: 'uint8' } },
  ]));
  assert.equal(weightBytes, 1280 * 100 * 4 + 100 * 4 + 300);
});

test('model.json that is not a single-file layers model is refused', () => {
  assert.throws(() => checkModelJson({ format: 'graph-model' }), /not a TF.js layers model/);
  assert.throws(() => checkModelJson(modelJson([], ['group1-shard1of2', 'group1-shard2of2'])), /expected \["weights.bin"\]/);
  assert.throws(() => checkModelJson(modelJson([{ name: 'x', shape: [2], dtype: 'string' }])), /unsupported dtype/);
});

test('labels must match the output units of the last Dense layer', () => {
  assert.equal(outputUnits(topology), 3);
  const { model } = checkModelJson(modelJson([]));
  assert.deepEqual(checkMetadata({ labels: ['a', 'b', 'c'], imageSize: 224 }, model).labels, ['a', 'b', 'c']);
  assert.throws(() => checkMetadata({ labels: ['a', 'b'] }, model), /2 labels, the model 3 output units/);
  assert.throws(() => checkMetadata({ labels: ['a', 'a', 'b'] }, model), /duplicate/);
  assert.throws(() => checkMetadata({}, model), /no labels/);
});

test('top-k is best first and at most k', () => {
  assert.deepEqual(topK(['a', 'b', 'c'], [0.2, 0.7, 0.1], 2), [
    { productId: 'b', probability: 0.7 },
    { productId: 'a', probability: 0.2 },
  ]);
});

test('channel IDs follow the ChannelModel pattern', () => {
  assert.throws(() => new ModelSync({ channelId: '../x', indexedDB: {} as IDBFactory }), /invalid channelId/);
});
