#!/usr/bin/env node
// CommonJS (bin/package.json): a start never loads the ES module loader (bin/launch.js).
require('./launch.js').launch('model-archiver');
