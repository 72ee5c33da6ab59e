"""Build for nasrec_lit: reads settings.ini as nbdev 2's setup.py template does."""
from configparser import ConfigParser
import os
import setuptools
from setuptools.command.build_py import build_py

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

licenses = {'apache2': 'Apache-2.0'}          # SPDX expressions (setuptools >= 77; license classifiers are deprecated)
statuses = ['Planning', 'Pre-Alpha', 'Alpha', 'Beta', 'Production/Stable', 'Mature', 'Inactive']
lic = licenses[cfg['license']]
requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
bench_requirements = cfg.get('bench_requirements', '').split()
ray_requirements = cfg.get('ray_requirements', '').split()

class BuildPyWithData(build_py):
    """The repository's data/ (the redistributable preference sets and CrossEval tables, with their licenses)
    travels inside a wheel as nasrec_lit/_data, where nasrec_lit.core.project_data_dirs finds it outside a
    checkout. An editable install reads data/ in place and copies nothing."""
    def run(self):
        super().run()
        if not getattr(self, 'editable_mode', False): self.copy_tree('data', os.path.join(self.build_lib, 'nasrec_lit', '_data'))

setuptools.setup(
    name=cfg['lib_name'],
    license=lic, license_files=['LICENSE'],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Programming Language :: Python :: 3'],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['nasrec_lit', 'nasrec_lit.*']),
    cmdclass={'build_py': BuildPyWithData},
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'bench': bench_requirements, 'ray': ray_requirements},
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': cfg['console_scripts'].split(),
                  'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
    version=cfg['version'],
    author=cfg['author'], author_email=cfg['author_email'],
    description=cfg['description'], keywords=cfg['keywords'],
)
