#!/usr/bin/env node
import { launch } from './launch.js';

await launch('server-main', 'model-server');
