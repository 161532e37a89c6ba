// Load an exported model with plain @tensorflow/tfjs 4.x (as a shop frontend
// does) and print its predictions for raw float32 NHWC inputs as JSON.
// usage: node predict_tfjs4.js MODEL_BASE_URL INPUT.f32 COUNT
'use strict';
const fs = require('fs');
const tf = require('@tensorflow/tfjs');
const { readInputs, printPredictions } = require('./io_common');

async function main() {
  const [baseUrl, inputPath, count] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const model = await tf.loadLayersModel(baseUrl + 'model.json');
  const inputs = readInputs(tf, fs, inputPath, Number(count));
  const output = model.predict(inputs);
  printPredictions({ tfjsVersion: tf.version.tfjs, outputShape: output.shape, probabilities: await output.array() });
}

main().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
