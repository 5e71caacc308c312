// Preloaded into NNI's Node.js manager (`node --require <this file>`), next to
// _nni_bind_loopback.js; see ofa_nni/_nni_compat.py, workarounds 10, 11 and 13. It patches NNI
// 3.0's manager modules as they load:
//
// 10. A tuner's error report (the dispatcher's `ER` command) ends the experiment in ERROR, but NNI
//     shows "Dispatcher stream error, tuner may have crashed." in place of the tuner's message
//     (core/nnimanager.js), which only reaches nnimanager.log. Here the status (`nnictl experiment
//     status`, /api/v1/nni/check-status, the web UI's error banner) carries the tuner's message.
// 11. The local training service (training_service/v3/compat.js, class V3asV1) queues the parameters
//     of submitted trials and hands the queue's head to whichever trial *asks* first, so two trials
//     started together get each other's parameters whenever the later one asks first, while NNI
//     records (web UI, exported data) the parameters each was submitted with. Here a trial that asks
//     gets the parameters it was submitted with (NNI already does so for resumed trials).
// 13. The manager gives the tuner process 10 s to connect (core/tuner_command_channel.js), which
//     `python -m nni` alone (importing NNI) exceeds on a loaded machine: the experiment then ends in
//     ERROR, "Tuner did not connect in 10 seconds". Here it waits TUNER_CONNECT_SECONDS.
'use strict';

const Module = require('module');
const path = require('path');
const { setTimeout: sleep } = require('timers/promises');

const DISPATCHER_STREAM_ERROR = 'Dispatcher stream error, tuner may have crashed.';
const TRIAL_ID_WAIT_MS = 60000;  // a trial may ask before createTrial() has returned its id

const TUNER_CONNECT_SECONDS = 120;

let pendingTunerError;  // the content of the last `ER` command, until the manager reports it

function patchWsChannel(exports) {
  const onReceive = exports.WsChannel.prototype.onReceive;
  exports.WsChannel.prototype.onReceive = function onReceiveNotingTunerErrors(callback) {
    return onReceive.call(this, (command, ...rest) => {
      if (command && command.type === 'ER') {
        pendingTunerError = String(command.content ?? '').trim().split('\n').filter(Boolean).pop();
      }
      return callback(command, ...rest);
    });
  };
}

function patchNniManager(exports) {
  const criticalError = exports.NNIManager.prototype.criticalError;
  exports.NNIManager.prototype.criticalError = function criticalErrorWithTunerMessage(err) {
    if (pendingTunerError && err instanceof Error && err.message === DISPATCHER_STREAM_ERROR) {
      err = new Error(pendingTunerError);
      pendingTunerError = undefined;
    }
    return criticalError.call(this, err);
  };
}

function patchTunerCommandChannel(exports) {
  const proto = Object.getPrototypeOf(exports.getTunerServer());
  proto.init = function initWaitingLonger() {
    if (this.connect.settled) {
      return Promise.resolve();
    }
    setTimeout(() => {
      if (!this.connect.settled) {
        this.connect.reject(new Error(`tuner_command_channel: Tuner did not connect in ${TUNER_CONNECT_SECONDS} `
                                      + 'seconds. Please check tuner (dispatcher) log.'));
      }
    }, TUNER_CONNECT_SECONDS * 1000);
    return this.connect.promise;
  };
}

function patchV3Compat(exports) {
  const proto = exports.V3asV1.prototype;
  const submitTrialJob = proto.submitTrialJob;
  const start = proto.start;
  const stateOf = (service) => {
    if (service.ofaNniParameters === undefined) {
      // sequence id -> parameters submitted with it; trial id -> sequence id of the trial created
      service.ofaNniParameters = { bySequence: new Map(), sequenceOf: new Map() };
    }
    return service.ofaNniParameters;
  };

  proto.submitTrialJob = async function submitTrialJobRemembered(form) {
    stateOf(this).bySequence.set(form.sequenceId, form.hyperParameters.value);
    return submitTrialJob.call(this, form);
  };

  proto.start = async function startWithParametersPerTrial() {
    const state = stateOf(this);
    const v3 = this.v3;
    const createTrial = v3.createTrial.bind(v3);
    v3.createTrial = async (envId, command, directory, sequenceId, ...rest) => {
      const trialId = await createTrial(envId, command, directory, sequenceId, ...rest);
      if (trialId) {
        state.sequenceOf.set(trialId, sequenceId);
      }
      return trialId;
    };
    const onRequestParameter = v3.onRequestParameter.bind(v3);
    v3.onRequestParameter = (callback) => onRequestParameter(async (trialId) => {
      await this.ofaNniAllocate(trialId);
      return callback(trialId);
    });
    return start.call(this);
  };

  // Move the parameters trialId was submitted with from the shared queue to NNI's per-trial map,
  // which NNI's request handler serves first.
  proto.ofaNniAllocate = async function allocate(trialId) {
    if (this.allocatedParameters.has(trialId)) {
      return;
    }
    const state = stateOf(this);
    const deadline = Date.now() + TRIAL_ID_WAIT_MS;
    while (!state.sequenceOf.has(trialId) && Date.now() < deadline) {
      await sleep(50);
    }
    const sequenceId = state.sequenceOf.get(trialId);
    const value = state.bySequence.get(sequenceId);
    const index = value === undefined ? -1 : this.parameters.indexOf(value);
    if (index >= 0) {
      this.parameters.splice(index, 1);
      this.allocatedParameters.set(trialId, value);
      state.bySequence.delete(sequenceId);
    }
  };
}

const PATCHES = [
  [path.join('nni_node', 'common', 'command_channel', 'websocket', 'channel.js'), patchWsChannel],
  [path.join('nni_node', 'core', 'nnimanager.js'), patchNniManager],
  [path.join('nni_node', 'core', 'tuner_command_channel.js'), patchTunerCommandChannel],
  [path.join('nni_node', 'training_service', 'v3', 'compat.js'), patchV3Compat],
];
const patched = new Set();
const load = Module._load;

const PATCHED_NAMES = /(?:^|\/)(?:channel|nnimanager|tuner_command_channel|compat)(?:\.js)?$/;  // the requests worth resolving

Module._load = function loadPatchingNni(request, parent, isMain) {
  const exports = load.apply(this, arguments);
  if (patched.size < PATCHES.length && PATCHED_NAMES.test(request)) {
    let filename;
    try {
      filename = Module._resolveFilename(request, parent, isMain);
    } catch (error) {
      return exports;
    }
    for (const [suffix, patch] of PATCHES) {
      if (!patched.has(suffix) && filename.endsWith(path.sep + suffix)) {
        patched.add(suffix);
        patch(exports);
      }
    }
  }
  return exports;
};
