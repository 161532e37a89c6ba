// Load Teachable Machine models as the shop's point of sale does, with
// @teachablemachine/image 0.8.5 and the @tensorflow/tfjs 1.3.1 it pins, and
// print each model's labels and predictions for the same fixed random inputs.
// usage: node compare_tm.js BASE_URL [BASE_URL ...]   (each ending in "/")
// env TM_NODE_MODULES: the node_modules holding both packages
//                      (default: ../js/tm/node_modules next to this script).
'use strict';
const path = require('path');

const modules = process.env.TM_NODE_MODULES || path.resolve(__dirname, '..', 'js', 'tm', 'node_modules');
const load = (name) => require(require.resolve(name, { paths: [modules] }));
const tf = load('@tensorflow/tfjs');
const tmImage = load('@teachablemachine/image');

const SIZE = 224;
const COUNT = 4;
const SEED = 20261122;

async function main() {
  const baseUrls = process.argv.slice(2);
  // Inputs in TM's range [-1, 1]; the seed makes every model see the same tensor.
  const inputs = tf.randomUniform([COUNT, SIZE, SIZE, 3], -1, 1, 'float32', SEED);
  const models = [];
  for (const baseUrl of baseUrls) {
    const model = await tmImage.load(baseUrl + 'model.json', baseUrl + 'metadata.json');
    // predict(image) needs a DOM canvas for its crop; the model behind it is this one.
    const output = model.model.predict(inputs);
    models.push({
      baseUrl,
      labels: model.getClassLabels(),
      totalClasses: model.getTotalClasses(),
      outputShape: output.shape,
      probabilities: await output.array(),
    });
  }
  process.stdout.write(JSON.stringify({ tfjsVersion: tf.version.tfjs, models }) + '\n');
}

main().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
