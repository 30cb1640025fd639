"""DCASE 2018 Task 1A: TUT Urban Acoustic Scenes 2018, development set (SubSpectralNet's data).

Layout (root = the extracted zips, or the single folder `TUT-urban-acoustic-scenes-2018-development/` in it):
    audio/<scene>-<city>-<location>-<segment>-a.wav     48 kHz, 24-bit stereo, 10 s
    meta.csv                                           TAB, header `filename scene_label identifier source_label`
    evaluation_setup/fold1_{train,evaluate}.txt        NO header: `audio/<file>.wav<TAB>scene_label`
    evaluation_setup/fold1_test.txt                    file names only (not used)

Split: fold1_train -> train (6,122), fold1_evaluate -> test (2,518). Option `validation`: "none" (default,
faithful: SubSpectralNet reports the best epoch on the evaluate fold) or "holdout" (per scene,
`validation_fraction` 0.1 of the train recording locations -- meta.csv `identifier` -- move to validation,
chosen by a stable hash). group = identifier; clip_id = file name without `.wav`.
"""
from __future__ import annotations

from soundbench.datasets.common import scene_dataset

NAME = "dcase2018_task1a"
FILENAME_BASE = "TUT-urban-acoustic-scenes-2018-development"
SOURCE_URL = "https://zenodo.org/record/1228142/files/"
# (suffix, bytes, md5) from DCASE-REPO/dcase_util TUTUrbanAcousticScenes_2018_DevelopmentSet
PACKAGES = (
    (".doc.zip", 10517, "28a4a9c46a6f46709ecc8eece365a3a4"),
    (".meta.zip", 69272, "e196065ee83c07af03a11a310364377d"),
    (".audio.1.zip", 1657811579, "62f97087c447e29def8716204469bf89"),
    (".audio.2.zip", 1783489370, "8e569a92025d82bff6b02b956d7c6dc9"),
    (".audio.3.zip", 1809675304, "00d2020582a4535af5e65322fb2bad56"),
    (".audio.4.zip", 1756582525, "d691eb4271f83ba6ba9a28797accc497"),
    (".audio.5.zip", 1724002546, "c4d64b5483b60f85e9fe080b3435a6be"),
    (".audio.6.zip", 1645753049, "2f0feee78f216697eb19497714d97642"),
    (".audio.7.zip", 1671903917, "07cfefe80a0731de6819181841239f3a"),
    (".audio.8.zip", 1673304843, "213f3c012859c2e9dcb74aacc8558458"),
    (".audio.9.zip", 1674839259, "b724442b09abcb3bd095ebff497cef85"),
    (".audio.10.zip", 1662932947, "a27a32fa52e283ed8013375b8a16f269"),
    (".audio.11.zip", 1751473843, "7073a121e825ffef99832507f30d6644"),
    (".audio.12.zip", 1742332198, "6567aa61db12776568b6267ce122fb18"),
    (".audio.13.zip", 798990513, "d00eeb2db0e093d8975521323a96c519"),
)


DATASET = scene_dataset(name=NAME, top=FILENAME_BASE, url=SOURCE_URL, packages=PACKAGES,
                        title="TUT Urban Acoustic Scenes 2018, development (DCASE 2018 Task 1A)",
                        fold_ext="txt", fold_header=False)
