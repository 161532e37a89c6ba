// Load an exported model the way the shop's point of sale does, with
// @teachablemachine/image 0.8.5 and the @tensorflow/tfjs 1.3.1 it pins, and
// print predictions for raw float32 NHWC inputs as JSON.
// usage: node tm/predict_tm.js MODEL_BASE_URL INPUT.f32 COUNT
'use strict';
const fs = require('fs');
const tf = require('@tensorflow/tfjs');
const tmImage = require('@teachablemachine/image');
const { readInputs, printPredictions } = require('../io_common');

async function main() {
  const [baseUrl, inputPath, count] = process.argv.slice(2);
  const model = await tmImage.load(baseUrl + 'model.json', baseUrl + 'metadata.json');
  const inputs = readInputs(tf, fs, inputPath, Number(count));
  // tmImage's predict(image) needs a DOM canvas for its crop; the model behind it is this one.
  const output = model.model.predict(inputs);
  printPredictions({
    tfjsVersion: tf.version.tfjs,
    labels: model.getClassLabels(),
    totalClasses: model.getTotalClasses(),
    outputShape: output.shape,
    probabilities: await output.array(),
  });
}

main().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
