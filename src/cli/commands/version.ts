import { defineCommand, out } from '../command.js';
import { VERSION } from '../../util/version.js';

export const versionCommand = defineCommand({
  command: 'version',
  describe: 'Print the version',
  builder: (y) => y,
  handler: async () => {
    out(`ondemand ${VERSION}`);
  },
});
