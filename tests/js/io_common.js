// Helpers shared by the TF.js prediction scripts (no dependency of their own).
'use strict';
const SIZE = 224;

function readInputs(tf, fs, path, count) {
  const buffer = fs.readFileSync(path);
  const values = new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 4);
  if (values.length !== count * SIZE * SIZE * 3) {
    throw new Error(`expected ${count} images of ${SIZE}x${SIZE}x3 floats, got ${values.length} floats`);
  }
  return tf.tensor4d(values, [count, SIZE, SIZE, 3]);
}

function printPredictions(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

module.exports = { readInputs, printPredictions };
