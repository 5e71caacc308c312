// Preloaded into NNI's Node.js manager (`node --require <this file>`, see ofa_nni/_nni_compat.py,
// workaround 6). NNI 3.0's REST server -- the web UI, its REST API and the tuner channel -- calls
// `app.listen(port)`, which binds every network interface, and has no option to choose one. Here a
// listen call that names no host (nor a socket path, handle or file descriptor) binds to the host in
// OFA_NNI_BIND_HOST instead, 127.0.0.1 by default. Set OFA_NNI_BIND_HOST=0.0.0.0 to expose the
// manager on purpose (remote training services, whose trials must reach it).
'use strict';

const net = require('net');

const bindHost = process.env.OFA_NNI_BIND_HOST || '127.0.0.1';
const listen = net.Server.prototype.listen;

function isPort(value) {
  return typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value));
}

function namesItsEndpoint(options) {
  return 'host' in options || 'path' in options || 'fd' in options || 'handle' in options || '_handle' in options;
}

net.Server.prototype.listen = function listenOnBindHost(...args) {
  const first = args[0];
  if (args.length === 0 || first === undefined || first === null || typeof first === 'function') {
    // listen() / listen(callback): a random port, on the bind host
    args.splice(0, first === undefined || first === null ? 1 : 0, 0, bindHost);
  } else if (isPort(first)) {
    if (typeof args[1] !== 'string') {
      args.splice(1, 0, bindHost);  // listen(port[, backlog][, callback])
    }
  } else if (typeof first === 'object' && !namesItsEndpoint(first)) {
    args[0] = { ...first, host: bindHost };  // listen({port, ...}[, callback])
  }
  return listen.apply(this, args);
};
